"""The audit trail's writer (recorder.store.auditqueue): entries queued by requests are appended
in batches, one chain without gaps, in the order they were queued; none is lost by a clean stop
or by a kill -9 between queueing and commit (the crash journal holds them until the next
start), and none is written twice."""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from recorder.recording.journal import JOURNAL_NAME, Journal, read_journal
from recorder.store.audit import AuditEntry, AuditQuery
from recorder.store.audithead import read_head
from recorder.store.auditqueue import AuditQueue, entry_fields, replay_pending
from recorder.store.evidence import JOURNAL_SOURCE, AuditHead, check_chain
from recorder.store.sqlite import SqliteStore
from tests.helpers.ctl import recorderctl
from tests.helpers.portal import PortalClient, cheap_hash
from tests.helpers.recorders import RecorderProcess, write_toml
from tests.helpers.waiting import wait_for


def _entry(n: int, action: str = "search") -> AuditEntry:
    return AuditEntry(time=1_700_000_000.0 + n / 1000, user_id=n % 4 or None,
                      username=f"user{n % 4}", action=action, target=str(n),
                      detail="ä \"q\"", address=f"10.0.0.{n % 250}")


def _opened(data: Path) -> tuple[SqliteStore, Journal]:
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    journal = Journal(data)
    journal.open()
    return store, journal


def _chain_ok(store: SqliteStore, journal_dir: Path) -> list[int]:
    """The entry ids, after checking the chain against both heads."""
    trail = store.audit_trail()
    head = read_head(store.head_path)
    assert head is not None
    heads = [head]
    contents = read_journal(journal_dir / JOURNAL_NAME)
    if contents.audit_head is not None:
        heads.append(AuditHead(JOURNAL_SOURCE, *contents.audit_head))
    assert check_chain(trail, heads, head_file_required=True) == []
    return [e.entry_id for e in trail.entries]


def test_entries_from_many_threads_form_one_chain_written_in_batches(tmp_path: Path) -> None:
    store, journal = _opened(tmp_path)
    queue = AuditQueue(store, store, journal)
    queue.start()
    threads_count, each = 6, 40

    def work(t: int) -> None:
        for i in range(each):
            n = t * each + i
            # Searches are queued; what must be on disk before it acts waits for its commit.
            if i % 5 == 0:
                assert queue.append_audit(_entry(n, "download")) > 0
            else:
                queue.enqueue_audit(_entry(n))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.flush()
    queue.stop()
    assert queue.join(10)
    total = threads_count * each
    assert _chain_ok(store, tmp_path) == list(range(1, total + 1))
    # Fewer commits than entries: that is the point of batching.
    assert queue.batches < total
    stored = store.list_audit(AuditQuery(limit=total))
    assert sorted(int(e.target) for e in stored) == list(range(total))
    # Each entry kept what its request gave it (time, user, address).
    by_target = {int(e.target): e for e in stored}
    for n in (0, 17, 239):
        assert (by_target[n].time, by_target[n].user_id, by_target[n].address) == (
            _entry(n).time, _entry(n).user_id, _entry(n).address)
    # The journal's head names the last entry and closes every queued one.
    contents = read_journal(tmp_path / JOURNAL_NAME)
    assert contents.audit_pending == {}
    assert contents.audit_head is not None
    assert contents.audit_head[0] == total
    journal.close()
    store.close()


def test_a_clean_stop_writes_what_is_still_queued(tmp_path: Path) -> None:
    store, journal = _opened(tmp_path)
    queue = AuditQueue(store, store, journal)
    queue.start()
    # The database busy (another process's write lock) while entries are queued and the
    # service stops: the stop waits for the lock to go and writes them.
    holder = sqlite3.connect(tmp_path / "recorder.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    for n in range(50):
        queue.enqueue_audit(_entry(n))
    queue.stop()
    time.sleep(0.3)
    holder.execute("ROLLBACK")
    holder.close()
    assert queue.join(15)
    assert queue.waiting == 0
    assert _chain_ok(store, tmp_path) == list(range(1, 51))
    journal.close()
    store.close()


def test_entries_queued_when_the_process_died_are_written_once_at_the_next_start(
        tmp_path: Path) -> None:
    # As a kill -9 leaves them: five entries queued (in the journal), of which the first
    # two were committed by a batch whose head line never reached the journal.
    store, journal = _opened(tmp_path)
    queued = [_entry(n) for n in range(5)]
    for entry in queued:
        journal.note_audit_pending(entry_fields(entry))
    store.append_batch(queued[:2])
    journal.close()
    store.close()

    store, journal = _opened(tmp_path)
    contents = read_journal(tmp_path / JOURNAL_NAME)
    assert sorted(contents.audit_pending) == [1, 2, 3, 4, 5]
    assert replay_pending(store, journal, contents.audit_pending, contents.audit_head) == 3
    assert _chain_ok(store, tmp_path) == [1, 2, 3, 4, 5]
    assert [e.target for e in store.list_audit(AuditQuery())] == ["4", "3", "2", "1", "0"]
    # Written: the next start finds nothing left to write, and numbering goes on after them.
    journal.rewrite()
    journal.close()
    again = read_journal(tmp_path / JOURNAL_NAME)
    assert again.audit_pending == {}
    assert again.audit_seq == 5
    store.close()


def test_a_compacted_journal_keeps_the_entries_not_yet_committed(tmp_path: Path) -> None:
    store, journal = _opened(tmp_path)
    for n in range(3):
        journal.note_audit_pending(entry_fields(_entry(n)))
    ids = store.append_batch([_entry(0)])
    journal.note_audit_head(*ids[-1], through=1)
    journal.rewrite()
    journal.close()
    contents = read_journal(tmp_path / JOURNAL_NAME)
    assert sorted(contents.audit_pending) == [2, 3]
    assert contents.audit_through == 1
    assert contents.audit_head == ids[-1]
    store.close()


def _portal_port(process: RecorderProcess) -> int:
    found = wait_for(lambda: re.search(r"portal listening on http://127\.0\.0\.1:(\d+)/",
                                       process.log), timeout=10)
    assert found
    return int(found.group(1))


@pytest.mark.slow
def test_a_search_answered_just_before_a_kill_9_is_in_the_trail_after_the_restart(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    data = tmp_path / "data"
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    from recorder.store.directory import UserFields  # noqa: PLC0415

    user = store.add_user(UserFields(username="sue", first_name="Sue", last_name="Agent",
                                     password_hash=cheap_hash("pw for sue")), now=time.time())
    role = store.add_role("viewers", "")
    assert role is not None
    store.set_role_permission(role.role_id, "ALLOWVIEWALLRECORDS", True)
    store.set_user_role(user, role.role_id, True)
    store.close()
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{data}"\n'
                        '[api]\nsocket_port = 0\nweb_port = 0\n'
                        '[portal]\nenabled = true\nport = 0\n'
                        '[[boards]]\ndriver = "synthetic"\ndevices = ["1001"]\n')
    first = RecorderProcess(["--config", str(config)])
    processes.append(first)
    first.wait_ready()
    client = PortalClient(_portal_port(first))
    assert client.sign_in("sue", "pw for sue").status == 303
    # The database busy (another process holds its write lock): the search is answered
    # while its entry waits for the writer, and recorderd is killed meanwhile.
    holder = sqlite3.connect(data / "recorder.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert client.get("/recordings?ani=6145550000").status == 200
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    done = recorderctl("audit", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout
    assert "note    1 entry recorderd queued before it stopped (a crash) are in the crash " \
           "journal" in done.stdout, done.stdout
    assert "ani=6145550000" not in recorderctl("audit", "--json", "--config", str(config)).stdout

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert again.stop() == 0, again.log
    listed = recorderctl("audit", "--action", "search", "--json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("ani=6145550000") == 1, listed.stdout
    done = recorderctl("audit", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout
    assert "agree" in done.stdout, done.stdout
    assert "queued" not in done.stdout, done.stdout


def test_audit_lines_alone_get_the_journal_compacted(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import recorder.recording.journal as journal_module  # noqa: PLC0415

    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 4096)
    store, journal = _opened(tmp_path)
    queue = AuditQueue(store, store, journal, linger=0)
    queue.start()
    for n in range(200):  # no call ends to compact it, only searches
        queue.enqueue_audit(_entry(n))
        if n % 25 == 24:
            assert queue.flush()  # a batch, and its head line, every 25
    queue.stop()
    assert queue.join(10)
    journal.close()
    assert (tmp_path / JOURNAL_NAME).stat().st_size < 8192
    contents = read_journal(tmp_path / JOURNAL_NAME)
    assert contents.audit_pending == {}
    assert contents.audit_seq == 200
    assert _chain_ok(store, tmp_path) == list(range(1, 201))
    store.close()


def test_a_recorder_stopping_writes_the_search_it_just_answered(tmp_path: Path) -> None:
    from recorder.store.directory import UserFields  # noqa: PLC0415
    from tests.helpers.portal import portal_port, portal_recorder  # noqa: PLC0415

    recorder = portal_recorder(tmp_path)
    try:
        assert recorder.store is not None
        user = recorder.store.directory.add_user(UserFields(
            username="sam", first_name="Sam", last_name="Agent",
            password_hash=cheap_hash("pw for sam")), now=time.time())
        role = recorder.store.directory.add_role("viewers", "")
        assert role is not None
        recorder.store.directory.set_role_permission(role.role_id, "ALLOWVIEWALLRECORDS", True)
        recorder.store.directory.set_user_role(user, role.role_id, True)
        client = PortalClient(portal_port(recorder))
        assert client.sign_in("sam", "pw for sam").status == 303
        # Answered with its entry queued; the stop comes at once, and the store closes only
        # after the writer (test_a_clean_stop_writes_what_is_still_queued holds it back).
        assert client.get("/recordings?dnis=8005550100").status == 200
    finally:
        recorder.stop()
    store = SqliteStore(recorder.config.storage.database_path)
    store.open()
    try:
        searches = store.list_audit(AuditQuery(action="search"))
        assert [e.detail for e in searches] == ["dnis=8005550100"]
        assert _chain_ok(store, recorder.config.storage.data_dir) != []
    finally:
        store.close()
    assert read_journal(recorder.config.storage.data_dir / JOURNAL_NAME).audit_pending == {}
