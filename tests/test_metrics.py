"""/metrics (Prometheus text format 0.0.4) and /status on the web port, scraped from a live
recorder (in-process, and recorderd for the main walk) while calls are recorded, refused and
subscribed to."""

from __future__ import annotations

import json
import math
import re
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recorder import __version__
from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.telemetry.prometheus import Counter, Gauge, Histogram, render
from tests.helpers.api import expect
from tests.helpers.net import self_signed
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running, base_config

# --- a strict reader of the exposition format ------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def _labels(raw: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        match = LABEL.match(raw, pos)
        assert match, f"bad label syntax at {raw[pos:]!r}"
        assert match.group(1) not in labels, f"label {match.group(1)} given twice"
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
        if pos < len(raw):
            assert raw[pos] == ",", f"expected ',' at {raw[pos:]!r}"
            pos += 1
    return labels


@dataclass
class Scrape:
    """What one scrape said: each family's TYPE and HELP, and every sample."""

    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def get(self, name: str, **labels: str) -> float:
        """The one sample ``name`` with exactly these labels."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels}"
        return self.samples[key]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include these (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(ls), v) for (n, ls), v in self.samples.items() if n == name]


def parse(text: str) -> Scrape:
    """Every line a HELP or TYPE comment or a sample; every sample's family typed first."""
    assert text.endswith("\n")
    scrape = Scrape()
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[0] == "#", line
            assert parts[1] in ("HELP", "TYPE"), line
            assert len(parts) >= 3, line
            assert re.fullmatch(NAME, parts[2]), line
            if parts[1] == "TYPE":
                assert parts[3] in TYPES, line
                assert parts[2] not in scrape.types, f"TYPE of {parts[2]} given twice"
                assert not any(n == parts[2] for n, _ in scrape.samples), \
                    f"TYPE of {parts[2]} after its samples"
                scrape.types[parts[2]] = parts[3]
            else:
                scrape.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, raw_labels, raw_value = match.groups()
        family = name if name in scrape.types else next(
            (name[:-len(s)] for s in (*SUFFIXES["histogram"],)
             if name.endswith(s) and scrape.types.get(name[:-len(s)]) in SUFFIXES), None)
        assert family is not None, f"{name} has no TYPE"
        labels = _labels(raw_labels or "")
        key = (name, frozenset(labels.items()))
        assert key not in scrape.samples, f"sample {line!r} given twice"
        scrape.samples[key] = float(raw_value)  # Go's spellings (+Inf, NaN) included
    return scrape


# --- the exposition module on its own --------------------------------------------------------

def test_label_values_and_help_are_escaped_per_the_format() -> None:
    counter = Counter("t_things_total", 'Things with a \\ backslash\nand a "quote"', ("what",))
    odd = 'a "quoted" C:\\path\nnext line'
    counter.inc(2, (odd,))
    text = render([counter.collect()])
    assert '# HELP t_things_total Things with a \\\\ backslash\\nand a "quote"\n' in text
    assert 't_things_total{what="a \\"quoted\\" C:\\\\path\\nnext line"} 2\n' in text
    scrape = parse(text)
    assert scrape.get("t_things_total", what=odd) == 2
    assert scrape.types == {"t_things_total": "counter"}


def test_histogram_buckets_are_cumulative_and_a_bound_holds_its_own_value() -> None:
    latency = Histogram("t_seconds", "latency", ("type",), buckets=(0.001, 0.01, 1.0))
    for seconds in (0.001, 0.005, 0.005, 7.0):
        latency.observe(seconds, ("TEST",))
    scrape = parse(render([latency.collect()]))
    buckets = {labels["le"]: value for labels, value in scrape.series("t_seconds_bucket")}
    assert buckets == {"0.001": 1, "0.01": 3, "1": 3, "+Inf": 4}
    assert scrape.get("t_seconds_count", type="TEST") == 4
    assert scrape.get("t_seconds_sum", type="TEST") == pytest.approx(7.011)


def test_misuse_is_refused_at_once() -> None:
    counter = Counter("t_total", "t", ("a",))
    with pytest.raises(ValueError, match="cannot go down"):
        counter.inc(-1, ("x",))
    with pytest.raises(ValueError, match="has labels"):
        counter.inc(1)
    with pytest.raises(ValueError, match="invalid metric"):
        Gauge("9lives", "no")
    with pytest.raises(ValueError, match="rendered twice"):
        render([counter.collect(), counter.collect()])


# --- a live recorder -------------------------------------------------------------------------

BLOCKED_ANI = "5550000"


@dataclass
class Page:
    status: int
    content_type: str
    body: bytes


def get(running: Running, path: str, *, method: str = "GET", port: int | None = None,
        context: ssl.SSLContext | None = None) -> Page:
    scheme = "https" if context is not None else "http"
    url = f"{scheme}://127.0.0.1:{port or running.web_port}{path}"
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            return Page(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as exc:
        return Page(exc.code, exc.headers["Content-Type"], exc.read())


def scrape(running: Running) -> Scrape:
    page = get(running, "/metrics")
    assert page.status == 200, page.body
    assert page.content_type == "text/plain; version=0.0.4; charset=utf-8"
    return parse(page.body.decode("utf-8"))


def status(running: Running) -> dict[str, Any]:
    page = get(running, "/status")
    assert page.status == 200, page.body
    assert page.content_type == "application/json; charset=utf-8"
    document: dict[str, Any] = json.loads(page.body)
    return document


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_metrics_move_as_calls_are_recorded_refused_and_subscribed_to(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder(recording={"blocked": [{"name": "legal", "ani": [BLOCKED_ANI]}]})
    before = scrape(running)
    assert before.get("recorder_build_info", version=__version__) == 1
    assert time.time() - 3600 < before.get("process_start_time_seconds") <= time.time()
    assert before.get("recorder_event_subscribers") == 0
    assert before.get("recorder_healthy") == 1
    assert before.get("recorder_board_up", board="boards[0]", driver="synthetic") == 1

    subscriber = running.connect()
    conn = running.connect()
    try:
        expect(subscriber.request("EVENTS", 1, eventclass="ALL"), 20)
        expect(conn.request("CALLSTART", 2, DEVICEID="1001", ANI="6145551212"), 20)
        time.sleep(2.0)
        during = scrape(running)
        expect(conn.request("CALLSTART", 3, DEVICEID="1002", ANI=BLOCKED_ANI), 20)
        expect(conn.request("CALLSTOP", 4, DEVICEID="1001"), 20)
        expect(conn.request("CALLSTOP", 5, DEVICEID="1002"), 20)
        (row,) = expect(conn.request("CALLLIST", 6, DEVICEID="1001"), 20).findall(
            "SEARCHRESULT")
        after = scrape(running)
        page = status(running)
    finally:
        conn.close()
        subscriber.close()

    # The EVENTS connection is one subscriber, while it is connected.
    assert during.get("recorder_event_subscribers") == 1
    assert page["api"]["event_subscribers"] == 1
    # Mid-call: one channel recording, one recording open, audio already counted.
    states = dict((labels["state"], value) for labels, value in during.series("recorder_channels"))
    assert sum(states.values()) == 4
    assert states["Recording"] == 1
    assert states["Idle"] == 3
    assert during.get("recorder_recordings_active") == 1
    assert during.get("recorder_bytes_written_total") > 8000 * 2  # over a second of PCM16

    def moved(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    assert moved("recorder_recordings_started_total") == 1
    assert moved("recorder_recordings_completed_total") == 1
    assert moved("recorder_recordings_refused_total") == 1
    assert after.get("recorder_recordings_active") == 0
    assert after.get("recorder_decisions_total", decision="record",
                     reason="API_RECORDING_STARTED") == 1
    assert after.get("recorder_decisions_total", decision="refuse",
                     reason="API_ERROR_BLOCKED_RECORDING_FILTER") == 1
    # Bytes written: the WAV's audio, that is its size on disk less the 44-byte header.
    size = Path(row.findtext("FILENAME") or "").stat().st_size
    written = moved("recorder_bytes_written_total")
    assert size - 64 <= written <= size, (written, size)
    assert written > 2 * 8000 * 2  # two seconds and more of 8 kHz PCM16
    # Requests by type and result code; a latency histogram that counted the same requests.
    assert moved("recorder_api_requests_total", type="CALLSTART", code="20",
                 result="API_OK") == 2
    assert moved("recorder_api_requests_total", type="CALLSTOP") == 2
    assert moved("recorder_api_requests_total", type="EVENTS", code="20") == 1
    for request_type in ("CALLSTART", "CALLSTOP", "EVENTS", "CALLLIST"):
        count = after.get("recorder_api_request_duration_seconds_count", type=request_type)
        assert count == after.total("recorder_api_requests_total", type=request_type)
        buckets = sorted(((float(labels["le"]), value) for labels, value in
                          after.series("recorder_api_request_duration_seconds_bucket")
                          if labels["type"] == request_type))
        values = [value for _, value in buckets]
        assert values == sorted(values)
        assert buckets[-1] == (math.inf, count)
        assert buckets[0][0] == 0.0001
        assert buckets[-2][0] == 5.0
        assert 0 < after.get("recorder_api_request_duration_seconds_sum",
                             type=request_type) < 5 * count
    assert page["api"]["requests"] == after.total("recorder_api_requests_total")
    # Disk free as the operating system tells it (other tests write beside us: roughly).
    free = shutil.disk_usage(running.data_dir).free
    assert after.get("recorder_disk_free_bytes") == pytest.approx(free, abs=256 << 20)
    assert after.get("recorder_disk_min_free_bytes") == 500 << 20
    assert after.get("recorder_store_errors_total") == 0
    for channel, device in enumerate(("1001", "1002", "1003", "1004"), start=1):
        for kind in ("gap", "overrun"):
            assert after.get("recorder_dropped_samples_total", channel=str(channel),
                             device=device, kind=kind) >= 0
    assert set(after.types) >= {"recorder_channels", "recorder_api_requests_total",
                                "recorder_api_request_duration_seconds"}
    assert after.types["recorder_api_request_duration_seconds"] == "histogram"


def test_requests_of_unknown_or_no_type_are_counted_without_new_series(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder()
    conn = running.connect()
    try:
        for n, request_type in enumerate(("FROBNICATE", "FROB1", "IMPORTAGENT"), start=1):
            conn.request(request_type, n)
        conn.send(b"hello\r\n")
        expect(conn.read_result(), 16)
        status_code, _ = running.web("type=nosuchthing&requestid=9")
        assert status_code == 200
    finally:
        conn.close()
    after = scrape(running)
    assert after.get("recorder_api_requests_total", type="UNKNOWN", code="10",
                     result="API_UNKNOWN_MESSAGE_TYPE") == 3
    assert after.get("recorder_api_requests_total", type="NONE", code="16",
                     result="API_INVALID_MESSAGE_FORMAT") == 1
    # A deprecated function the manual names keeps its own series (49).
    assert after.get("recorder_api_requests_total", type="IMPORTAGENT", code="49",
                     result="API_COMMAND_NOT_SUPPORTED") == 1
    assert {labels["type"] for labels, _ in after.series("recorder_api_requests_total")} == {
        "UNKNOWN", "NONE", "IMPORTAGENT"}


@pytest.mark.slow
def test_status_shows_a_call_in_progress(running: Running) -> None:
    conn = running.connect()
    try:
        expect(conn.request("CALLSTART", 1, DEVICEID="1003"), 20)
        running.wait_recorded("1003", 1.0)  # its own audio: a loaded machine captures late
        during = status(running)
        expect(conn.request("CALLSTOP", 2, DEVICEID="1003"), 20)
    finally:
        conn.close()
    after = status(running)

    assert during["health"] == {"ok": True, "problems": []}
    assert during["version"] == __version__
    assert during["ident"] == 1
    assert isinstance(during["pid"], int)
    assert during["started"] <= time.time()
    assert during["uptime_seconds"] > 0
    (active,) = during["active"]
    assert active["device"] == "1003"
    assert active["seconds"] > 0.5
    assert active["partial"] is False
    assert active["paused"] is False
    assert isinstance(active["recordid"], int)
    assert len(active["global_id"]) == 15
    assert Path(active["filename"]).exists()
    assert during["recordings"] == {"active": 1, "started": 1, "completed": 0, "refused": 0}
    channels = {c["device"]: c for c in during["channels"]}
    assert sorted(channels) == ["1001", "1002", "1003", "1004"]
    assert channels["1003"]["state"] == "Recording"
    assert channels["1003"]["recording"] is True
    assert channels["1001"]["state"] == "Idle"
    assert channels["1001"]["recording"] is False
    for channel in channels.values():
        assert channel["peak_dbfs"] is None or channel["peak_dbfs"] <= 0
        assert channel["gaps"] >= 0
        assert channel["overruns"] >= 0
    (board,) = during["boards"]
    assert board == {"name": "boards[0]", "driver": "synthetic", "sample_rate": 8000,
                     "channels": 4, "state": "running", "detail": ""}
    disk = during["disk"]
    assert disk["ok"] is True
    assert 0 < disk["free_bytes"] <= disk["total_bytes"]
    assert disk["min_free_bytes"] == 500 << 20
    assert Path(disk["path"]) == running.data_dir / "recordings"
    database = during["database"]
    assert database["backend"] == "sqlite"
    assert database["ok"] is True
    assert database["recordings"] == 1
    assert database["errors"] == 0
    assert Path(database["path"]).exists()
    assert during["api"]["socket"] == f"127.0.0.1:{running.socket_port}"
    assert during["api"]["web"] == f"127.0.0.1:{running.web_port}"
    assert during["api"]["tls"] is None

    assert after["active"] == []
    assert after["recordings"] == {"active": 0, "started": 1, "completed": 1, "refused": 0}
    assert after["database"]["recordings"] == 1


def test_metrics_and_status_are_on_the_https_port_too(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = config_from_dict(base_config(tmp_path, api={
        "socket_port": 0, "web_port": 0, "tls_port": 0, "tls_cert": str(cert),
        "tls_key": str(key)}), base_dir=tmp_path)
    recorder = Recorder(config)
    recorder.start()
    try:
        assert recorder.api is not None
        assert recorder.api.tls_address is not None
        running = Running(recorder.api.socket_address[1], recorder.api.web_address[1],
                          config.storage.data_dir, recorder)
        context = ssl.create_default_context(cafile=str(cert))
        port = recorder.api.tls_address[1]
        page = get(running, "/metrics", port=port, context=context)
        assert page.status == 200
        assert parse(page.body.decode()).get("recorder_healthy") == 1
        page = get(running, "/status", port=port, context=context)
        assert page.status == 200
        assert json.loads(page.body)["api"]["tls"] == f"127.0.0.1:{port}"
        # Only reading: anything else is refused, and the service carries on.
        assert get(running, "/metrics", method="POST").status == 405
        assert get(running, "/status", method="DELETE").status == 405
        assert get(running, "/metrics", method="HEAD").status == 200
        expect(running.request("TEST", 1), 20)
    finally:
        recorder.stop()
