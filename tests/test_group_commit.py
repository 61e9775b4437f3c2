"""Group commit (issue 19): concurrent durable writes share one transaction, each caller
answered only once the batch holding its item is written; a failed batch is written again item
by item, so one bad item fails only its caller. A real SQLite store; and kill -9 of a real
recorderd while ten CTI links start recorded calls: every CALLSTART answered API_OK is found
after the restart."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.config.loader import config_from_dict
from recorder.errors import StoreError
from recorder.recording.groupcommit import GroupCommit
from recorder.store.records import FinishedRecording, NewRecording
from recorder.store.sqlite import SqliteStore
from tests.helpers.recorders import RecorderProcess, write_toml
from tests.helpers.waiting import wait_for


def row(n: int, device: str = "2001") -> NewRecording:
    return NewRecording(device_id=device, call_instance=str(n), channel=0,
                        filename=f"/rec/{n}.wav", media_format="wav", sample_rate=8000,
                        start_time=1_700_000_000.0 + n, core_ident=1, meta={"ANI": str(n)})


def held_then_released(gc: GroupCommit[int, int], write: list[Sequence[int]],
                       items: list[int]) -> dict[int, int | BaseException]:
    """Submit ``items`` from a thread each; the first batch is held until every other item
    waits behind it, so the rest share the second. Each thread's outcome."""
    outcomes: dict[int, int | BaseException] = {}
    release = threading.Event()
    first = threading.Event()

    def submit(item: int) -> None:
        try:
            outcomes[item] = gc.submit(item)
        except BaseException as exc:
            outcomes[item] = exc

    leader = threading.Thread(target=submit, args=(items[0],))
    gc_write = gc._write

    def holding(batch: Sequence[int]) -> list[int]:
        if not first.is_set():
            first.set()
            release.wait(30)
        write.append(list(batch))
        return gc_write(batch)

    gc._write = holding
    leader.start()
    first.wait(30)
    others = [threading.Thread(target=submit, args=(item,)) for item in items[1:]]
    for thread in others:
        thread.start()
    wait_for(lambda: len(gc._waiting) == len(others) or None,
             timeout=30, what="every other item waiting")
    release.set()
    for thread in [leader, *others]:
        thread.join(30)
    return outcomes


def test_concurrent_items_share_a_batch_and_each_gets_its_own_result() -> None:
    gc: GroupCommit[int, int] = GroupCommit(lambda batch: [item * 10 for item in batch])
    batches: list[Sequence[int]] = []
    outcomes = held_then_released(gc, batches, list(range(1, 11)))
    assert outcomes == {item: item * 10 for item in range(1, 11)}
    assert batches[0] == [1]
    assert sorted(batches[1]) == list(range(2, 11))  # nine items, one write
    assert (gc.batches, gc.items) == (2, 10)


def test_a_bad_item_fails_only_its_own_caller() -> None:
    def write(batch: Sequence[int]) -> list[int]:
        if 7 in batch:
            raise StoreError("item 7 cannot be written")
        return list(batch)

    gc: GroupCommit[int, int] = GroupCommit(write)
    outcomes = held_then_released(gc, [], list(range(1, 11)))
    assert isinstance(outcomes.pop(7), StoreError)
    assert outcomes == {item: item for item in range(1, 11) if item != 7}


def test_sqlite_writes_a_batch_in_one_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "recorder.sqlite3", 5.0)
    store.open()
    try:
        assert store.batches_atomically
        gc: GroupCommit[NewRecording, int] = GroupCommit(store.insert_recordings)
        idents: list[int] = []
        threads = [threading.Thread(target=lambda n=n: idents.append(gc.submit(row(n))))
                   for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(set(idents)) == 20
        assert store.count_recordings() == 20
        # All or none: a batch with a row that cannot be stored stores none of it.
        with pytest.raises(StoreError):
            store.insert_recordings([row(100), row(101, device=None)])  # type: ignore[arg-type]
        assert store.count_recordings() == 20
        done = FinishedRecording(stop_time=1_700_000_100.0, duration=3.0, audio_size=48000,
                                 audio_hash="0" * 64, stop_reason="callstop", lost_samples=0)
        store.finish_recordings([(ident, done) for ident in idents])
        finished = [store.get_recording(ident) for ident in idents]
        assert all(r is not None and r.duration == 3.0 for r in finished)
    finally:
        store.close()


# --- kill -9 while ten links start recorded calls ---------------------------------------------

LINKS = 10
FIRST_DEVICE = 2001


def _config(tmp_path: Path) -> Path:
    wav = tmp_path / "noise.wav"
    rng = np.random.default_rng(1)
    soundfile.write(wav, (rng.standard_normal(8000) * 1000).astype(np.int16), 8000,
                    subtype="PCM_16")
    devices = ", ".join(f'"{FIRST_DEVICE + i}"' for i in range(LINKS))
    files = ", ".join(f'"{wav}"' for _ in range(LINKS))
    return write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[api]\nsocket_port = 0\nweb_port = 0\n'
                      f'[[boards]]\ndriver = "file"\nfiles = [{files}]\n'
                      f'devices = [{devices}]\n')


def _link(port: int, device: str, stop: threading.Event, answered: list[str]) -> None:
    """CALLSTART, CALLSTOP, ... on one device until ``stop`` or the connection dies; each
    CALLSTART answered API_OK noted by its ANI (unique)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            buffer = b""
            n = 0
            while not stop.is_set():
                n += 1
                ani = f"{device}{n:06d}"
                for kind in ("CALLSTART", "CALLSTOP"):
                    extra = f"<ANI>{ani}</ANI>" if kind == "CALLSTART" else ""
                    sock.sendall(f"<REQUEST><TYPE>{kind}</TYPE><REQUESTID>{n}</REQUESTID>"
                                 f"<DEVICEID>{device}</DEVICEID>{extra}</REQUEST>\r\n".encode())
                    while b"\r\n" not in buffer:
                        data = sock.recv(65536)
                        if not data:
                            return
                        buffer += data
                    line, buffer = buffer.split(b"\r\n", 1)
                    if kind == "CALLSTART" and b"<RESULTCODE>20</RESULTCODE>" in line:
                        answered.append(ani)
    except OSError:
        return  # killed: whatever was answered before is what counts


@pytest.mark.process
@pytest.mark.slow
def test_kill_9_loses_no_answered_callstart(tmp_path: Path,
                                            processes: list[RecorderProcess]) -> None:
    config = _config(tmp_path)
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    stop = threading.Event()
    answered: list[str] = []
    links = [threading.Thread(target=_link, args=(running.socket_port, str(FIRST_DEVICE + i),
                                                  stop, answered)) for i in range(LINKS)]
    for link in links:
        link.start()
    # Killed mid-stream, with starts in flight on every link, once a few hundred are answered.
    wait_for(lambda: len(answered) >= 200 or None, timeout=120, what="200 calls answered")
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    stop.set()
    for link in links:
        link.join(30)
    kept = list(answered)
    # The next start recovers what the journal holds; every answered call has its row.
    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert again.stop() == 0
    db = sqlite3.connect(config_from_dict({"storage": {"data_dir": str(tmp_path / "data")}},
                                          base_dir=tmp_path).storage.database_path)
    try:
        stored = {ani for (ani,) in db.execute("SELECT ani FROM recordings")}
    finally:
        db.close()
    missing = [ani for ani in kept if ani not in stored]
    assert not missing, f"{len(missing)} of {len(kept)} answered calls lost: {missing[:5]}"
    assert len(kept) >= 200
