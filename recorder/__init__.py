"""Call-recording appliance: capture, scheduling, storage and the WFO XML/Web API."""

from __future__ import annotations

__version__ = "0.1.0"
