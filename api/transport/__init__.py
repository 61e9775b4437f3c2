"""The API's transports: the XML socket server, the WebAPI over HTTP and HTTPS, the framing of
the socket's byte stream, and the load limits both share; ``server`` runs them on one event loop.
"""
