"""Telemetry: what the running service says about itself. ``reporter`` answers ``/status``,
health and systemd's status line; ``metrics`` collects the Prometheus ``/metrics`` (written by
``prometheus``) from the ``components`` the composition root has started; ``hostinfo`` reads the
host's figures SYSTEMSTATUS reports.
"""
