"""The server side of TLS for every listener that offers it (the WebAPI's HTTPS, the portal's
HTTPS, SIP over TLS): one place that loads a certificate and its key, and that names the
setting to fix when they cannot be used."""

from __future__ import annotations

import ssl

from recorder.errors import StartupError


def server_context(setting: str, cert: str, key: str, *, client_ca: str = "",
                   client_ca_setting: str = "") -> ssl.SSLContext:
    """A server context for ``cert`` and ``key`` (PEM paths); StartupError naming ``setting``
    (e.g. "api.tls_cert") when the files cannot be read or do not belong together.

    With ``client_ca`` (PEM CA certificates, named by ``client_ca_setting``), every client
    must present a certificate one of them issued (mutual TLS): a client without one, or
    with one of another CA, fails the handshake."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        # OSError says why in strerror, SSLError in reason; either is what an operator needs.
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise StartupError(f"{setting}: cannot use {cert} with the key {key}: {why}") from exc
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise StartupError(f"{client_ca_setting}: cannot use {client_ca} as CA "
                               f"certificates: {why}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context
