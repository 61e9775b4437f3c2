"""Events: the manual's event types (``types``) and the bus that fans them out to subscribers
(``bus``), which never blocks the publisher.
"""
