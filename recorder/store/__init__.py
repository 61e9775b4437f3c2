"""The store: the only package that knows SQL or which database is in use.

``records`` and ``directory`` are the row types and interfaces callers speak (recordings and API
field names, never SQL); ``recordings`` is the recordings' interface; ``factory`` opens the
store the configuration asks for: its recordings behind the outage spool (``spool``, its file
``spoolfile``), its directory straight to the database. ``sqlite`` (recordings), ``sqlite_chat``
(screen sessions), ``sqlite_directory`` (users, phones, stations, agent windows) and
``sqlite_roles`` (groups, roles, permissions) share one connection (``sqlite_conn``);
``audit`` is the audit trail's interface (``sqlite_audit`` its SQLite side, append-only),
``bookmarks`` the portal's bookmarks' (``sqlite_bookmarks``);
``schema`` holds the migrations; ``passwords`` the password hashes.
"""
