"""The server side of TLS for every listener that offers it (the WebAPI's HTTPS, the portal's
HTTPS, SIP over TLS): one place that loads a certificate and its key, and that names the
setting to fix when they cannot be used."""

from __future__ import annotations

import ssl

from recorder.errors import StartupError


def server_context(setting: str, cert: str, key: str) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key`` (PEM paths); StartupError naming ``setting``
    (e.g. "api.tls_cert") when the files cannot be read or do not belong together."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        # OSError says why in strerror, SSLError in reason; either is what an operator needs.
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise StartupError(f"{setting}: cannot use {cert} with the key {key}: {why}") from exc
    return context
