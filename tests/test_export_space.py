"""Exports never cut live calls (issue 18): the work area's byte budget and the free-space floor.

The finding, reproduced: the data directory (recordings, database, export work area) is one
small disk, a real tmpfs where mounting is permitted (else a modelled one, tests/helpers/
datadisk.py), and two calls record while four WebAPI clients ask for COMBINEDEXPORT of one
recording x 200 (an 8 MB WAV) over and over for ten seconds. Before the work area had a budget,
the exports filled the disk: both calls were cut short (stop reason ``truncated``) and the
exports that met the full disk answered 11. Now neither live recording may be cut, and every
export is answered with its whole media or with a refusal in words (2
API_ERROR_OUT_OF_DISK_SPACE, 47 API_COMMAND_QUEUE_FULL), never 11.

A harder variant mixes EXPORT, MULTIEXPORT and COMBINEDEXPORT from three clients while a fourth
keeps every export it is sent unread, then fills the disk so that one more export would leave
the calls three seconds. Then each refusal on purpose (too many exports, the budget, the
recordings' room for an e-mail attachment), a disk that fills up while an export is written (2,
nothing left behind), and an after-call encoding that waits as WAV while there is no room.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile
from lxml import etree

from tests.helpers.api import ApiConnection, expect
from tests.helpers.datadisk import DataDisk, small_data_disk
from tests.helpers.exports import (
    Answer,
    Reply,
    check_answers,
    check_live,
    combined,
    record,
    rows,
    summary,
    tone,
)
from tests.helpers.net import smtp_server
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.waiting import wait_for

RATE = 8000
MIB = 1 << 20
GAP = 96 * 1024  # three seconds of two 8 kHz PCM calls
HZ = {"2001": 440.0, "2002": 1000.0, "2003": 660.0}  # two live calls, and the exported line
LIVE = ("2001", "2002")


@pytest.fixture
def disk_path(record_property: Callable[[str, object], None]) -> Callable[[DataDisk], None]:
    def note(disk: DataDisk) -> None:
        record_property("disk", disk.mode)
        print(f"small disk: {disk.mode}")
    return note


@dataclass
class Scene:
    """Two calls being recorded on a small data disk, and a recording to export."""

    running: Running
    disk: DataDisk
    data: Path
    conn: ApiConnection
    ident: str  # 2.5 s of 8 kHz PCM: 200 of it combined is an 8 MB WAV
    other: str  # a shorter one
    frames: int  # ident's
    began: float  # when the live calls started (monotonic)

    def end_calls(self) -> float:
        """CALLSTOP both live calls; how long they lasted at least."""
        lasted = time.monotonic() - self.began
        for device in LIVE:
            expect(self.conn.request("CALLSTOP", 2, DEVICEID=device), 20)
        self.conn.close()
        return lasted

    def check_calls_whole(self, lasted: float) -> None:
        """Neither live call was cut: each one recording ended by its CALLSTOP, its tone."""
        for device in LIVE:
            check_live(self.data, device, HZ[device], lasted)
        assert self.running.metric("recorder_recordings_truncated_total") == 0
        assert self.running.status()["disk"]["full"] is False
        # Nothing is left in the work area once every answer has gone.
        tmp = self.data / "tmp"
        wait_for(lambda: not any(tmp.iterdir()), 10.0, what=lambda: list(tmp.iterdir()))


@contextlib.contextmanager
def two_live_calls(tmp_path: Path, start_recorder: Callable[..., Running],
                   request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                   disk_path: Callable[[DataDisk], None], *, size: int) -> Iterator[Scene]:
    """A recorder whose data directory is one disk of ``size`` bytes, 2 MB of it to stay
    free (retention.min_free_mb), a recording of line 2003 made, and calls on 2001 and 2002
    being recorded."""
    lines = tmp_path / "lines"
    lines.mkdir()
    data = tmp_path / "data"
    with small_data_disk(data, size) as disk:
        disk_path(disk)
        if disk.mode == "modelled" and request.node.callspec.params["start_recorder"] != \
                "in-process":
            pytest.skip("without a tmpfs the disk is modelled in-process only")
        running = start_recorder(
            storage={"data_dir": str(data)}, retention={"min_free_mb": 2},
            boards=[{"driver": "file", "devices": list(HZ),
                     "files": [str(tone(lines / f"{d}.wav", f)) for d, f in HZ.items()]}])
        disk.model(running, monkeypatch)
        try:
            conn = running.connect()
            time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
            source = record(conn, "2003", 2.0)
            other = record(conn, "2003", 0.5)
            for device in LIVE:
                expect(conn.request("CALLSTART", 1, DEVICEID=device), 20)
            yield Scene(running, disk, data, conn, source["RECORDID"], other["RECORDID"],
                        soundfile.info(source["FILENAME"]).frames, time.monotonic())
        finally:
            if running.recorder is not None:
                running.recorder.stop()  # before the file system goes away


def flood(web_port: int, query: str, clients: int, seconds: float,
          bytes_per_second: float) -> list[Answer]:
    """``clients`` clients each ask for ``query`` again as soon as the last answer is read
    (at ``bytes_per_second``), for ``seconds``; every answer."""
    answers: list[Answer] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client() -> None:
        try:
            start.wait(30)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                answer = Reply(web_port, query).read(bytes_per_second)
                with lock:
                    answers.append(answer)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    return answers


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_four_clients_flooding_combinedexport_never_cut_live_calls(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[DataDisk], None]) -> None:
    with two_live_calls(tmp_path, start_recorder, request, monkeypatch, disk_path,
                        size=40 * MIB) as scene:
        # The disk holds older recordings (a filler): room for two of the 8 MB exports and a
        # second of the live calls (a disk mostly full, as appliances run). Each client reads at
        # 8 MB/s, as over a busy 100 Mbit/s link: an answer's file stays on the disk for about
        # a second while it is sent, and the next export is asked for once it is read.
        export = 44 + 2 * 200 * scene.frames
        filler = scene.disk.fill(2 * export + 32 * 1024)
        answers = flood(scene.running.web_port, combined(scene.ident, 200), 4, 10.0, 8e6)
        lasted = scene.end_calls()
        print(summary(answers))
        codes = [answer.code for answer in answers]
        assert 11 not in codes
        scene.check_calls_whole(lasted)
        check_answers(answers, RATE, scene.frames)
        assert codes.count(0) >= 4  # exports still work, one at a time
        # A second export at once would take the calls' room: refused, saying why.
        refused = [answer for answer in answers if answer.code == 2]
        assert refused, summary(answers)
        for answer in refused:
            expect(answer.result, 2, starts="refused, the live recordings come first: "
                   "COMBINEDEXPORT of 200 recordings as WAV needs about 7.")
        filler.unlink()


class Hoarder:
    """A client that downloads exports on many connections and reads none of them until it
    is told to, so every export it was sent stays on the disk meanwhile: first the biggest,
    then ever smaller ones, each until the recorder answers anything but media."""

    def __init__(self, running: Running, ladder: list[str], rounds: int) -> None:
        self.running = running
        self.ladder = ladder
        self.rounds = rounds
        self.held: list[Reply] = []
        self.answers: list[Answer] = []

    def fill(self) -> None:
        for query in self.ladder:
            for _ in range(self.rounds):
                reply = Reply(self.running.web_port, query)
                if not reply.media:
                    self.answers.append(reply.read())
                    break
                self.held.append(reply)

    def let_go(self) -> list[Answer]:
        """Read everything held; every answer it had."""
        answers = self.answers + [reply.read() for reply in self.held]
        self.held.clear()
        self.answers = []
        return answers


def hammer(running: Running, queries: list[str], clients: int,
           hoarder: Hoarder) -> list[Answer]:
    """``clients`` clients send every query, one after another, while ``hoarder`` fills."""
    answers: list[Answer] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(offset: int) -> None:
        try:
            start.wait(30)
            for n in range(len(queries)):
                answer = Reply(running.web_port, queries[(n + offset) % len(queries)]).read()
                with lock:
                    answers.append(answer)
        except BaseException as exc:
            failures.append(exc)

    def hoard() -> None:
        try:
            start.wait(30)
            hoarder.fill()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=hoard))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    # The room the others' exports took for a moment is free again: the hoarder takes it.
    hoarder.fill()
    return answers


def settled(disk: DataDisk) -> bool:
    """The free space has not grown for a moment (only the live calls take it now)."""
    before = disk.free()
    time.sleep(0.5)
    return disk.free() <= before


def grown_or_cut(running: Running, files: dict[str, tuple[Path, int]], more: int) -> bool:
    """Each live recording has written ``more`` bytes past its size in ``files``, or the
    recorder has cut recordings short (its rows may not say so: the database is on the full
    disk too)."""
    if running.metric("recorder_recordings_truncated_total") > 0:
        return True
    return all(path.stat().st_size >= size + more for path, size in files.values())


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_exports_hammered_from_outside_never_cut_live_calls(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[DataDisk], None]) -> None:
    with two_live_calls(tmp_path, start_recorder, request, monkeypatch, disk_path,
                        size=40 * MIB) as scene:
        running, data, ident = scene.running, scene.data, scene.ident
        # COMBINEDEXPORT of one recording x 200 (an 8 MB WAV), EXPORT and MULTIEXPORT from
        # three clients at once, while a fourth keeps what it is sent.
        queries = [
            combined(ident, 200),
            f"type=export&requestid=2&uniquefield=ident&uniqueid={ident}&media_format=mp3",
            combined(ident, 200, spelling="COMBINEEXPORT"),
            f"type=multiexport&requestid=4&ident={ident},{scene.other}&media_format=wav",
            combined(ident, 200, fmt="mp3"),
            f"type=export&requestid=6&uniquefield=ident&uniqueid={ident}&media_format=vox",
        ]
        hoarder = Hoarder(running, [combined(ident, 200)], rounds=6)
        answers = hammer(running, queries * 2, 3, hoarder)
        answers += hoarder.let_go()

        # The disk nearly full (something else took it): one export would leave the live
        # calls three seconds. It is kept unread while they write more than that. The exports
        # just read are deleted once sent, and their room is free once the server has closed
        # them too: the filler is measured after that.
        wait_for(lambda: not any((data / "tmp").iterdir()), 10.0,
                 what=lambda: list((data / "tmp").iterdir()))
        wait_for(lambda: settled(scene.disk), 10.0, what="the free space to stop growing")
        filler = scene.disk.fill(44 + 200 * 2 * scene.frames + GAP)
        live = {}
        for device in LIVE:
            path = Path(rows(data, device)[0]["filename"])
            live[device] = (path, path.stat().st_size)
        hoarder = Hoarder(running, [combined(ident, 200)], rounds=1)
        hoarder.fill()
        wait_for(lambda: grown_or_cut(running, live, GAP + RATE * 2), 20.0,
                 what=lambda: [dict(r) for d in live for r in rows(data, d)])
        filler.unlink()
        (last,) = hoarder.let_go()
        answers.append(last)
        lasted = scene.end_calls()

        print(summary(answers))
        scene.check_calls_whole(lasted)
        check_answers(answers, RATE, scene.frames)
        assert any(a.media and "combinedexport" in a.query.lower() for a in answers)
        # The export that would have left the live calls three seconds: refused, saying so.
        expect(last.result, 2, starts="refused, the live recordings come first: "
               "COMBINEDEXPORT of 200 recordings as WAV needs about 7.")
        assert "are kept for the recordings (retention.min_free_mb 2, 120 s of the " \
            "recordings in progress)" in (last.result.findtext("RESULTMSG") or "")


# --- each refusal, produced on purpose ----------------------------------------------------------


def web_result(running: Running, query: str) -> etree._Element:
    answer = Reply(running.web_port, query).read()
    assert answer.status == 200
    assert not answer.media, answer.query
    return answer.result


@pytest.mark.slow
def test_too_many_exports_or_too_many_bytes_are_refused_in_words(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "export_concurrency": 2,
                                  "export_max_bytes": MIB})
    assert running.recorder is not None
    assert running.recorder.dispatcher is not None
    exports = running.recorder.dispatcher.context.exports
    assert exports is not None
    conn = running.connect()
    time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
    ident = record(conn, "1001", 1.0)["RECORDID"]
    conn.close()
    single = f"type=export&requestid=1&uniquefield=ident&uniqueid={ident}&media_format=vox"

    with exports.admit("an export of a client", 1000), exports.admit("another", 1000):
        answer = web_result(running, single)
        expect(answer, 47, f"2 exports are being made, as many as api.export_concurrency "
               f"allows; try EXPORT of recording {ident} as VOX again when one is done")
    assert Reply(running.web_port, single).read().media

    # A combined file bigger than the whole budget: 2, it never fits.
    answer = web_result(running, combined(ident, 200))
    expect(answer, 2, starts="COMBINEDEXPORT of 200 recordings as WAV needs about")
    assert "more than api.export_max_bytes (1.0 MB)" in (answer.findtext("RESULTMSG") or "")
    # One that fits once the exports before it are done: 47.
    with exports.admit("an export being sent", MIB - 100):
        answer = web_result(running, single)
        expect(answer, 47, starts=f"EXPORT of recording {ident} as VOX needs about")
    assert Reply(running.web_port, single).read().media
    # Its bytes are given back once the transport has sent the file and deleted it.
    wait_for(lambda: (exports.running, exports.reserved_bytes) == (0, 0), 10.0,
             what=lambda: (exports.running, exports.reserved_bytes))


@pytest.mark.slow
def test_a_disk_that_fills_up_during_an_export_is_answered_2_and_nothing_is_left(
        tmp_path: Path, start_recorder: Callable[..., Running],
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[DataDisk], None]) -> None:
    data = tmp_path / "data"
    with small_data_disk(data, 16 * MIB) as disk:
        disk_path(disk)
        if disk.mode != "tmpfs":
            pytest.skip("the export's own writes meet a full disk only on a real one")
        running = start_recorder(storage={"data_dir": str(data)},
                                 retention={"min_free_mb": 0})
        try:
            conn = running.connect()
            time.sleep(0.6)
            ident = record(conn, "1001", 2.0)["RECORDID"]
            conn.close()
            # The estimates fall short (as if something else took the room meanwhile).
            from recorder.api.handlers import media  # noqa: PLC0415 - what is patched

            monkeypatch.setattr(media, "combined_bytes", lambda *args, **kwargs: 0)
            monkeypatch.setattr(media, "zip_bytes", lambda *args, **kwargs: 0)
            filler = disk.fill(512 * 1024)
            for query in (combined(ident, 200), combined(ident, 200, fmt="mp3"),
                          f"type=multiexport&requestid=3&ident={ident}&media_format=wav"):
                if "multiexport" in query:
                    filler.unlink()
                    filler = disk.fill(20 * 1024)  # less than the one WAV in the ZIP
                answer = web_result(running, query)
                expect(answer, 2)
                assert "the disk filled up while it was written" in (
                    answer.findtext("RESULTMSG") or "")
                assert list((data / "tmp").iterdir()) == []  # nothing half written is left
            assert running.recorder is not None
            assert running.recorder.disk is not None
            assert running.recorder.disk.claimed_bytes == 0
        finally:
            if running.recorder is not None:
                running.recorder.stop()


class _Counting:
    """An SMTP handler that counts the messages it accepts."""

    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages += 1
        return "250 Message accepted for delivery"


@pytest.mark.slow
def test_mail_attachments_never_take_the_recordings_room_either(
        start_recorder: Callable[..., Running], monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _Counting()
    with smtp_server(handler) as port:
        running = start_recorder(smtp={"host": "127.0.0.1", "port": port,
                                       "sender": "recorder@example.com"})
        assert running.recorder is not None
        disk = running.recorder.disk
        assert disk is not None
        conn = running.connect()
        time.sleep(0.6)
        ident = record(conn, "1001", 1.0)["RECORDID"]
        conn.close()
        # The disk at the floor: no room for anything but recordings.
        monkeypatch.setattr(disk, "_usage", lambda root: disk.floor_bytes)
        for query in (f"type=email&requestid=1&ident={ident}&toaddress=a@example.com"
                      "&media_format=mp3",
                      f"type=combinedemail&requestid=2&ident={ident},{ident}"
                      "&toaddress=a@example.com",
                      f"type=export&requestid=3&uniquefield=ident&uniqueid={ident}"
                      "&media_format=mp3"):
            answer = web_result(running, query)
            expect(answer, 2)
            message = answer.findtext("RESULTMSG") or ""
            assert "the live recordings come first" in message, message
            assert "retention.min_free_mb 500" in message, message
        assert handler.messages == 0
        monkeypatch.undo()
        expect(web_result(running, f"type=email&requestid=4&ident={ident}"
                                   "&toaddress=a@example.com&media_format=mp3"), 20)
        assert handler.messages == 1
        assert disk.claimed_bytes == 0


def test_what_a_stopped_recorder_left_in_the_work_area_is_removed_at_start(
        tmp_path: Path, start_recorder: Callable[..., Running]) -> None:
    # A crash mid-export leaves its file, its .part and a ZIP's scratch file.
    work = tmp_path / "data" / "tmp"
    work.mkdir(parents=True)
    left = [work / "export-a1b2.wav", work / "export-c3d4.zip.part", work / "export-e5f6.mp3"]
    for path in left:
        path.write_bytes(bytes(64 * 1024))
    running = start_recorder()
    assert not any(path.exists() for path in left)
    assert running.recorder is not None
    assert running.recorder.dispatcher is not None
    exports = running.recorder.dispatcher.context.exports
    assert exports is not None
    assert (exports.running, exports.reserved_bytes) == (0, 0)


@pytest.mark.slow
def test_after_call_encoding_waits_as_wav_while_there_is_no_room(
        tmp_path: Path, start_recorder: Callable[..., Running],
        monkeypatch: pytest.MonkeyPatch) -> None:
    running = start_recorder(storage={"data_dir": str(tmp_path / "data"), "format": "mp3",
                                      "encode": "after-call"})
    recorder = running.recorder
    assert recorder is not None
    assert recorder.disk is not None
    assert recorder.after_call is not None
    disk, after_call = recorder.disk, recorder.after_call
    monkeypatch.setattr(disk, "_usage", lambda root: disk.floor_bytes)
    conn = running.connect()
    time.sleep(0.6)
    call = record(conn, "1001", 1.0)
    wait_for(lambda: after_call.deferred == 1, 10.0, what="the encoding deferred")
    (row,) = rows(running.data_dir, "1001")
    assert (row["status"], row["stop_reason"]) == ("complete", "callstop")
    wav = Path(row["filename"])
    assert wav.suffix == ".wav"
    assert soundfile.info(str(wav)).duration == pytest.approx(row["duration"], abs=1e-3)
    assert not wav.with_suffix(".mp3").exists()
    # A call made meanwhile records as ever: the live recordings come first.
    expect(conn.request("CALLSTART", 1, DEVICEID="1002"), 20)
    monkeypatch.undo()
    assert after_call.retry_deferred() == 1  # as the pool does by itself every 10 s
    wait_for(lambda: rows(running.data_dir, "1001")[0]["filename"].endswith(".mp3"), 30.0,
             what="the MP3")
    assert not wav.exists()
    expect(conn.request("CALLSTOP", 2, DEVICEID="1002"), 20)
    conn.close()
    assert call["RECORDID"] == str(row["ident"])
