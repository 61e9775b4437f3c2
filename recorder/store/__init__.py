"""The store: the only package that knows SQL or which database is in use.

``records`` and ``directory`` are the row types and interfaces callers speak (recordings and API
field names, never SQL); ``recordings`` is the recordings' interface; ``sqlite*`` the embedded
backend, ``schema`` its migrations; ``spool`` keeps recording going while the database is away;
``factory`` opens the store the configuration asks for.
"""
