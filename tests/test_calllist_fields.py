"""CALLLIST written straight from the query's text (issue 19) says exactly what the general
path says, which maps each row to a recording and renders its fields: the same bytes for
values that need escaping, blank and missing agents, recordings in progress (their DURATION
counted to now, halves rounded to even as round() does), and CALLCOUNT; a value XML cannot
carry still goes the general way. A real SQLite store."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.api.handlers.status import _search_result, stored_calls
from recorder.api.protocol.params import Params
from recorder.api.protocol.xmlcodec import render_result
from recorder.api.request import ApiResult, Node
from recorder.resultcodes import ResultCode
from recorder.store.directory import UserFields
from recorder.store.records import (
    FILTER_FIELDS,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
)
from recorder.store.sqlite import SqliteStore

T0 = 1_700_000_000.0
NOW = T0 + 10_000.0
VALUES = ("", "x", "a & b <c>", "line\nbreak\r", "Zoë's \"quoted\"", "東京", "  padded ",
          "]]>", "&amp;")


class _Stores:
    """A store's CALLLIST both ways: the store's own text, and the general path's rows."""

    def __init__(self, store: SqliteStore) -> None:
        self.recordings = store
        self.directory = store


def general(store: SqliteStore, params: dict[str, str], max_rows: int = 500) -> bytes:
    """What CALLLIST answered before: every row mapped and rendered (stored_calls' old way)."""
    count = int(params.pop("CALLCOUNT", max_rows))
    equals = {k: v for k, v in params.items() if k in FILTER_FIELDS and v}
    rows = store.list_recordings(RecordingQuery(equals=equals, limit=min(count, max_rows)))
    body: list[Node] = [("TYPE", "CALLLIST")]
    body += [("SEARCHRESULT", _search_result(n, row, NOW)) for n, row in enumerate(rows, 1)]
    return render_result("CALLLIST", "1", ApiResult(ResultCode.API_OK, "API_OK", body))


def fast(store: SqliteStore, params: dict[str, str], max_rows: int = 500) -> bytes:
    result = stored_calls(_Stores(store), Params(dict(params), "CALLLIST"),  # type: ignore[arg-type]
                          max_rows, NOW)
    return render_result("CALLLIST", "1", result)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    found = SqliteStore(tmp_path_factory.mktemp("calllist-fields") / "recorder.sqlite3")
    found.open()
    rng = random.Random(19)
    user = found.add_user(UserFields(first_name="Ana & <Bo>", last_name="", username="ana"),
                          now=T0)
    durations = (0.5, 1.5, 2.5, 3.4999, 7.0, 12.5000001, None, None)
    for n in range(120):
        meta = {name: rng.choice(VALUES) for name in FILTER_FIELDS
                if name not in ("DEVICEID",)}
        device = rng.choice(("2001", "2002", "a&b"))
        ident = found.insert_recording(NewRecording(
            device_id=device, call_instance=rng.choice(VALUES), channel=1,
            filename=f"/rec/{n} <x>.wav", media_format="wav", sample_rate=8000,
            # Recordings in progress started a whole or a half second before NOW.
            start_time=NOW - rng.choice((2.5, 3.5, 4.0)) if n % 4 == 0 else T0 + n,
            core_ident=1, meta=meta, agent_id=user if n % 3 == 0 else None))
        duration = rng.choice(durations)
        if n % 4 and duration is not None:
            found.finish_recording(ident, FinishedRecording(
                stop_time=T0 + n + duration, duration=duration, audio_size=100,
                audio_hash="0" * 64, stop_reason="callstop"))
    yield found
    found.close()


@pytest.mark.parametrize("params", [
    {}, {"CALLCOUNT": "7"}, {"DEVICEID": "2001"}, {"DEVICEID": "a&b", "CALLCOUNT": "3"},
    {"ANI": "a & b <c>"}, {"USER1": "line\nbreak\r"}, {"ANI": "never"},
])
def test_the_text_path_writes_what_the_general_path_wrote(store: SqliteStore,
                                                         params: dict[str, str]) -> None:
    assert store.calllist_fields(RecordingQuery(limit=1), NOW) is not None
    assert fast(store, params) == general(store, params)


def test_it_covers_halves_and_recordings_in_progress(store: SqliteStore) -> None:
    answer = fast(store, {}).decode()
    durations = {part.split("</DURATION>")[0] for part in answer.split("<DURATION>")[1:]}
    # round(2.5) is 2 and round(3.5) is 4 (halves to even), round(0.5) 0, round(1.5) 2,
    # round(12.5000001) 13.
    assert {"0", "2", "4", "7", "13"} <= durations


def test_a_value_xml_cannot_carry_goes_the_general_way(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "recorder.sqlite3")
    store.open()
    try:
        store.insert_recording(NewRecording(
            device_id="2001", call_instance="", channel=1, filename="/rec/a.wav",
            media_format="wav", sample_rate=8000, start_time=T0, core_ident=1,
            meta={"ANI": "bell\x07"}))
        # The general path refuses to write it, as it always did (the dispatcher answers it).
        with pytest.raises(ValueError, match="cannot carry"):
            fast(store, {})
    finally:
        store.close()
