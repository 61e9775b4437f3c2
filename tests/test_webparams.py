"""WebAPI parameters combined as the manual describes."""

from __future__ import annotations

import pytest

from recorder.api.protocol.webparams import DUPLICATES_MESSAGE, merge_params
from recorder.api.request import RequestError


def test_repeated_name_is_joined_with_commas() -> None:
    assert merge_params([("type", "callstart"), ("deviceid", "1234"), ("deviceid", "5555")]) == [
        ("type", "callstart"), ("deviceid", "1234,5555")]


def test_same_name_in_different_cases_is_refused() -> None:
    with pytest.raises(RequestError) as err:
        merge_params([("deviceid", "1234"), ("DEVICEID", "5555")])
    assert err.value.message == DUPLICATES_MESSAGE
    assert err.value.code == 16


def test_characters_xml_cannot_carry_are_refused() -> None:
    with pytest.raises(RequestError) as err:
        merge_params([("user1", "a\x01b")])
    assert err.value.code == 16
