"""``python -m recorder`` runs the service, like ``recorderd``."""

from __future__ import annotations

import sys

from recorder.service.daemon import main

sys.exit(main())
