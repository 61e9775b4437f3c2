"""Assertions on RESULTs shared by the directory, administration, system and chat API tests."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from tests.conftest import ApiConnection, result_code

# Runs a test against an in-process recorder only (the error cases): the whole-process variant
# is covered by each file's representative tests and by the manual walk.
IN_PROCESS = pytest.mark.parametrize("start_recorder", ["in-process"], indirect=True)


def expect(result: etree._Element, code: int, message: str | None = None, *,
           starts: str | None = None) -> etree._Element:
    """``result`` has RESULTCODE ``code`` and, if given, the exact message or its start."""
    got = result.findtext("RESULTMSG") or ""
    assert result_code(result) == code, etree.tostring(result).decode()
    if message is not None:
        assert got == message
    if starts is not None:
        assert got.startswith(starts), got
    return result


def fields(element: etree._Element | None) -> dict[str, str]:
    """The text children of ``element`` by tag."""
    assert element is not None
    return {child.tag: child.text or "" for child in element if not len(child)}


def add_user(conn: ApiConnection, first: str, last: str, **more: Any) -> int:
    """IMPORTUSER ADD, which must succeed; the new USERID."""
    result = expect(conn.request("IMPORTUSER", 1, action="ADD", firstname=first,
                                 lastname=last, **more), 20)
    return int(result.findtext("USERID") or 0)
