"""Telemetry: what the running service says about itself: Prometheus ``/metrics``
(``prometheus`` is the exposition format), the ``/status`` document and health (``reporter``),
and the host's figures SYSTEMSTATUS reports (``hostinfo``).
"""
