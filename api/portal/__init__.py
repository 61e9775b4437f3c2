"""The web portal (docs/portal.md): people sign in, find, play, download and delete recordings
under the manual's roles and permissions, on a listener of its own apart from the WebAPI.

``routes`` is the one table of every path and the permission it needs (checked by ``server``
before any handler runs, with ``recorder.rules.access``); ``server`` runs the listener on its
own event loop and workers; ``sessions`` the signing key, cookies, CSRF tokens and sessions;
``throttle`` the sign-in limits; ``context`` what handlers may use; ``signin``, ``search`` and
``recordings`` the pages; ``forms`` reads the search form; ``render`` the templates
(``templates/``, autoescaped) and ``static/`` what the browser loads, shipped as package data.
"""
