"""The API's transports: the XML socket server (``socket_server``), the WebAPI over HTTP and
HTTPS (``webapi``, its connections held to their limits by ``httpguard``), the framing of the
socket's byte stream (``framing``), and the limits both share: the command queues and their
lanes (``loadlimits``), the clients' places in all, per address and for the CTI links
(``clients``); ``server`` runs them on one event loop.
"""
