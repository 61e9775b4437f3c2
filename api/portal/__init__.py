"""The web portal (docs/portal.md): people sign in, find, play, download and delete recordings,
bookmark them, watch the live view, administer users, roles and groups, and read the audit
trail, under the manual's roles and permissions, on a listener of its own apart from the WebAPI.

``routes`` is the one table of every path and the permission it needs (checked by ``server``
before any handler runs, with ``recorder.rules.access``); ``server`` runs the listener on its
own event loop and workers; ``sessions`` the signing key, cookies, CSRF tokens and sessions;
``throttle`` the sign-in limits; ``context`` what handlers may use. The pages: ``signin``,
``search`` (with ``forms``, the search form), ``recordings`` (a recording, its audio,
download, delete), ``renditions`` (what a browser cannot play as stored, downloads in other
formats), ``bookmarks``, ``live``, ``system`` (status, disk, health), ``admin`` (users and
roles), ``groups``, ``account`` (own password, audit trail), ``assets`` (static files).
``render`` loads the templates (``templates/``, autoescaped); ``static/`` is what the browser
loads; both ship as package data.
"""
