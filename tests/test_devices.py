"""The bounded device table: which devices it forgets, which it keeps, and what a request on a
forgotten device gets, as a table of scenarios, through the scheduler, and over the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from recorder.calls.devices import DEFAULT_MAX_TRACKED_DEVICES, DeviceTable
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallError, CallStart, CallUpdate, DeviceQuery
from recorder.config.loader import config_from_dict
from recorder.config.recording import RecordingConfig
from recorder.errors import ConfigError
from recorder.resultcodes import ResultCode
from tests.helpers.api import result_code
from tests.helpers.calls import Bench
from tests.helpers.recorders import Running, base_config
from tests.helpers.waiting import wait_for

TAPPED = ("t1", "t2")


def _call(device_id: str, when: float, alias: str) -> LiveCall:
    return LiveCall(device_id=device_id, instance="", meta={"DEVICEALIAS": alias},
                    start_time=when)


def run(table: DeviceTable, steps: str) -> None:
    """Apply ``steps``, space-separated: ``call:x`` (a call on x, begun and ended),
    ``open:x`` (a call on x that stays open), ``end:x`` (x's open call ends), ``use:x`` (a
    request finds x)."""
    for n, step in enumerate(steps.split()):
        verb, device_id = step.split(":")
        if verb in ("call", "open"):
            state = table.add(device_id, None)
            call = _call(device_id, float(n), f"desk-{device_id}")
            state.active[call.instance] = state.last = call
            if verb == "call":
                del state.active[call.instance]
                call.stop_time = float(n)
        elif verb == "end":
            state = table.get(device_id)
            assert state is not None
            assert state.last is not None
            state.active.clear()
            state.last.stop_time = float(n)
        else:
            assert verb == "use", step
            table.get(device_id)


@dataclass(frozen=True)
class Case:
    name: str
    max_tracked: int
    steps: str
    kept: tuple[str, ...]  # the devices left, DEVICELIST's order (tapped ones first)
    evicted: int


CASES = [
    Case("under the limit nothing is forgotten", 3, "call:a call:b call:c",
         (*TAPPED, "a", "b", "c"), 0),
    Case("the least recently named goes first", 3, "call:a call:b call:c call:d call:e",
         (*TAPPED, "c", "d", "e"), 2),
    Case("a request finding a device is a use", 3, "call:a call:b call:c use:a call:d",
         (*TAPPED, "a", "c", "d"), 1),
    Case("a call naming a device again is a use", 3, "call:a call:b call:c call:a call:d",
         (*TAPPED, "a", "c", "d"), 1),
    Case("a device with an open call is kept", 2, "open:a call:b call:c call:d",
         (*TAPPED, "a", "d"), 2),
    Case("once its call ends it may go", 2, "open:a call:b end:a call:c call:d",
         (*TAPPED, "c", "d"), 2),
    Case("more open calls than the limit: the table grows", 2, "open:a open:b open:c",
         (*TAPPED, "a", "b", "c"), 0),
    Case("and comes back to the limit once they end", 2,
         "open:a open:b open:c end:a end:b end:c call:d", (*TAPPED, "c", "d"), 2),
    Case("a forgotten device named again is new", 1, "call:a call:b call:a",
         (*TAPPED, "a"), 2),
    Case("a limit of one keeps the newest", 1, "call:a call:b call:c", (*TAPPED, "c"), 2),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_table_keeps_tapped_busy_and_recent_devices(case: Case) -> None:
    table = DeviceTable(case.max_tracked)
    for channel, device_id in enumerate(TAPPED, 1):
        table.add(device_id, channel)
    run(table, case.steps)
    assert [s.device_id for s in table.all()] == list(case.kept)
    size = table.size()
    assert (size.tapped, size.tracked, size.evicted) == (
        len(TAPPED), len(case.kept) - len(TAPPED), case.evicted)
    assert size.max_tracked == case.max_tracked


def test_tapped_devices_are_never_forgotten_and_do_not_count() -> None:
    table = DeviceTable(1)
    for i in range(50):
        table.add(f"t{i}", i + 1)
    run(table, " ".join(f"call:x{i}" for i in range(30)))
    assert len(table) == 51
    assert all(f"t{i}" in table for i in range(50))
    assert table.size().tracked == 1


def test_a_forgotten_device_no_longer_resolves_by_its_alias() -> None:
    table = DeviceTable(2)
    run(table, "call:a call:b")
    assert table.resolve(DeviceQuery(alias="desk-a")) == "a"
    run(table, "call:c")
    assert table.resolve(DeviceQuery(alias="desk-a")) is None
    assert table.resolve(DeviceQuery(alias="desk-c")) == "c"


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeviceTable(0)


def test_the_config_key_defaults_to_the_table_default_and_names_itself_when_wrong(
        tmp_path: Path) -> None:
    assert RecordingConfig().max_tracked_devices == DEFAULT_MAX_TRACKED_DEVICES
    config = config_from_dict(base_config(tmp_path, recording={"max_tracked_devices": 7}),
                              base_dir=tmp_path)
    assert config.recording.max_tracked_devices == 7
    for bad in (0, "many"):
        with pytest.raises(ConfigError, match=r"recording\.max_tracked_devices"):
            config_from_dict(base_config(tmp_path, recording={"max_tracked_devices": bad}),
                             base_dir=tmp_path)


# --- through the scheduler (real capture core, writer, files, SQLite) -------------------------


def test_a_device_whose_file_is_still_closing_is_busy(tmp_path: Path) -> None:
    # A commit delay holds the file open after CALLSTOP until the writer has passed the end.
    bench = Bench(tmp_path, delay=1.0)
    try:
        bench.feed(10)
        call = bench.scheduler.call_start(CallStart(device=DeviceQuery(device_id="1001")))
        bench.feed(100)
        bench.stop("1001")
        # The same call as the last of a device in a table of its own.
        state = DeviceTable(1).add("1001", None)
        state.last = call
        assert call.session is not None
        assert not call.session.closed
        assert not state.active
        assert state.busy
        bench.writer.start()  # the writer passes the end: the file closes
        bench.feed(100)
        wait_for(lambda: call.session is not None and call.session.closed)
        assert not state.busy
    finally:
        bench.close()


def test_the_scheduler_forgets_untapped_devices_beyond_its_limit(tmp_path: Path) -> None:
    bench = Bench(tmp_path, max_tracked_devices=5)
    try:
        bench.feed(10)
        bench.start("1001", ANI="100")
        bench.feed(50)
        bench.stop("1001")
        for i in range(40):
            bench.start(f"x{i}", DEVICEALIAS=f"desk{i}")
            bench.stop(f"x{i}")
        size = bench.scheduler.status.device_table_size()
        assert (size.tapped, size.tracked, size.evicted) == (2, 5, 35)
        listed = [s.device_id for s in bench.scheduler.status.device_status(DeviceQuery())]
        assert listed == ["1001", "1002", *(f"x{i}" for i in range(35, 40))]
        # A forgotten device is unknown, as one never named...
        with pytest.raises(CallError) as unknown:
            bench.scheduler.status.device_status(DeviceQuery(device_id="x0"))
        assert unknown.value.code is ResultCode.API_DEVICE_INVALID
        with pytest.raises(CallError) as by_alias:
            bench.scheduler.status.device_status(DeviceQuery(alias="desk0"))
        assert by_alias.value.code is ResultCode.API_DEVICE_INVALID
        # ... and a new call on it works, and tracks it again.
        bench.start("x0", DEVICEALIAS="desk0")
        (shown,) = bench.scheduler.status.device_status(DeviceQuery(alias="desk0"))
        assert shown.device_id == "x0"
        assert shown.current is not None
        assert shown.current.stop_time is None
        bench.stop("x0")
        # The tapped device kept its last call; its last recording is updated from the store.
        (tapped,) = bench.scheduler.status.device_status(DeviceQuery(device_id="1001"))
        assert tapped.current is not None
        assert tapped.current.meta["ANI"] == "100"
        assert bench.scheduler.updates.call(DeviceQuery(device_id="1001"), None,
                                           CallUpdate(meta={"USER1": "late"}), True) \
            == "recording"
        (row,) = bench.rows()
        assert row.meta["USER1"] == "late"
    finally:
        bench.close()


# --- over the API, in-process and against a real recorderd ------------------------------------

CAP = 20
FLOOD = 300


def _ok(result: etree._Element) -> etree._Element:
    assert result_code(result) == 20, etree.tostring(result)
    return result


def test_far_more_devices_than_the_limit_keep_the_table_at_it(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder(recording={"max_tracked_devices": CAP})
    conn = running.connect()
    try:
        _ok(conn.request("CALLSTART", 1, DEVICEID="1001", ANI="6145551212"))
        _ok(conn.request("CALLSTOP", 2, DEVICEID="1001"))
        for i in range(FLOOD):
            _ok(conn.request("CALLSTART", 3, DEVICEID=f"flood{i}", DEVICEALIAS=f"desk{i}"))
            _ok(conn.request("CALLSTOP", 4, DEVICEID=f"flood{i}"))
        assert running.status()["devices"] == {
            "tapped": 4, "tracked": CAP, "max_tracked": CAP, "evicted": FLOOD - CAP}
        assert running.metric('recorder_devices{kind="tracked"}') == CAP
        assert running.metric("recorder_devices_evicted_total") == FLOOD - CAP
        listed = _ok(conn.request("DEVICELIST", 5))
        assert listed.findtext("DEVICES/COUNT") == str(4 + CAP)

        # The first flood device was forgotten: unknown now, by DEVICEID and by alias.
        assert result_code(conn.request("DEVICESTATUS", 6, DEVICEID="flood0")) == 8
        assert result_code(conn.request("DEVICESTATUS", 7, DEVICEALIAS="desk0")) == 8
        # A call on it still works, and it is back in the table (another one went instead).
        _ok(conn.request("CALLSTART", 8, DEVICEID="flood0", DEVICEALIAS="desk0"))
        shown = _ok(conn.request("DEVICESTATUS", 9, DEVICEALIAS="desk0"))
        assert shown.findtext("DEVICES/DEVICE/DEVICEID") == "flood0"
        assert shown.findtext("DEVICES/DEVICE/STOPTIME") == ""  # the call is open
        # Taken, not recorded: no channel taps it.
        assert shown.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == "API_DEVICE_INVALID"
        _ok(conn.request("CALLSTOP", 10, DEVICEID="flood0"))
        assert running.status()["devices"]["tracked"] == CAP

        # The tapped device was never forgotten: its call and its recording are still there.
        tapped = _ok(conn.request("DEVICESTATUS", 11, DEVICEID="1001"))
        assert tapped.findtext("DEVICES/DEVICE/ANI") == "6145551212"
        _ok(conn.request("CALLUPDATE", 12, DEVICEID="1001", UPDATE_IF_NOT_RECORDING="Y",
                         USER1="after the flood"))
        calls = _ok(conn.request("CALLLIST", 13, DEVICEID="1001"))
        assert calls.findtext("SEARCHRESULT/USER1") == "after the flood"
    finally:
        conn.close()
