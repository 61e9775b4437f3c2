"""The one XML parser configuration for what callers send (API requests, SIPREC metadata): no
entity is expanded, no DTD or network resource loaded, no huge tree; an lxml parser per
thread, as lxml parsers must not be shared between threads."""

from __future__ import annotations

import threading

from lxml import etree

_local = threading.local()


def parser() -> etree.XMLParser:
    """This thread's hardened parser (made on first use)."""
    found: etree.XMLParser | None = getattr(_local, "parser", None)
    if found is None:
        found = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False,
        )
        _local.parser = found
    return found
