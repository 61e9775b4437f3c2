"""The seal key (storage.seal_key_file, docs/storage.md): a real recorderd with a history sealed
the old way takes a key made by ``recorderctl seal-key init`` into use; then someone who can
write the database, the files and both audit heads, but not read the key, forges evidence as
this repository's documentation tells them how (plain SHA-256, a key of their own, everything
re-hashed), and ``recorderctl verify`` / ``audit verify`` (real processes, with the key) must
catch each forgery, while the untouched evidence, old and new, still checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from pathlib import Path

import pytest

from recorder.recording.journal import JOURNAL_NAME
from recorder.store.audithead import write_head
from recorder.store.evidence import (
    GENESIS,
    ROW_SEAL_COLUMNS,
    AuditAnchor,
    AuditTrailState,
    ChainedEntry,
    audit_hash,
    check_chain,
    keyed_audit_hash,
    keyed_row_seal,
    row_seal,
)
from recorder.store.sealing import Sealing
from recorder.store.sealkey import SealKey
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import record
from tests.helpers.recorders import RecorderProcess, start_recorderd

KEY = SealKey(bytes(range(32)))


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "recorder.sqlite3", isolation_level=None)


def _seals(data: Path) -> dict[int, str | None]:
    db = _db(data)
    try:
        return dict(db.execute("SELECT ident, row_hash FROM recordings ORDER BY ident"))
    finally:
        db.close()


def _forge_row(data: Path, ident: int, key: bytes | None) -> None:
    """A row's duration changed and sealed again: plain SHA-256, or HMAC under ``key``."""
    db = _db(data)
    try:
        db.execute("UPDATE recordings SET duration = duration + 30 WHERE ident = ?", (ident,))
        values = db.execute(f"SELECT {', '.join(ROW_SEAL_COLUMNS)} FROM recordings WHERE "
                            "ident = ?", (ident,)).fetchone()
        seal = row_seal(values) if key is None else keyed_row_seal(values, key)
        db.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?", (seal, ident))
    finally:
        db.close()


def _rehash_chain(data: Path, first: int, detail: str | None = None) -> None:
    """Entries from ``first`` re-hashed with plain SHA-256 (entry ``first``'s detail replaced
    by ``detail`` if given), and both heads rewritten to name the new last entry."""
    db = _db(data)
    try:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        rows = db.execute("SELECT entry_id, time, user_id, username, action, target, detail,"
                          " address, prev_hash FROM audit ORDER BY entry_id").fetchall()
        prev = GENESIS
        for entry_id, time, user_id, username, action, target, old, address, _ in rows:
            if entry_id < first:
                prev = db.execute("SELECT entry_hash FROM audit WHERE entry_id = ?",
                                  (entry_id,)).fetchone()[0]
                continue
            text = detail if entry_id == first and detail is not None else old
            new = audit_hash(entry_id, time, user_id, username=username, action=action,
                             target=target, detail=text, address=address, prev_hash=prev)
            db.execute("UPDATE audit SET detail = ?, prev_hash = ?, entry_hash = ? WHERE "
                       "entry_id = ?", (text, prev, new, entry_id))
            prev = new
        last = rows[-1][0]
    finally:
        db.close()
    write_head(data / "audit-head", last, prev)
    with (data / JOURNAL_NAME).open("a") as journal:
        journal.write(json.dumps({"op": "audit-head", "entry_id": last,
                                  "entry_hash": prev}) + "\n")


def _ctl(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = recorderctl(*args, env=env)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)  # three recorderd starts and a dozen recorderctl runs, loaded machine
def test_a_seal_key_taken_into_use_makes_forgery_without_it_show(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    # A history sealed the old way: two recordings, and an audit entry by recorderctl.
    config, data, running = start_recorderd(tmp_path, processes, devices=("1001", "1002"))
    conn = running.connect()
    old = [int(record(conn, device, 0.5)["RECORDID"]) for device in ("1001", "1002")]
    conn.close()
    assert running.process is not None
    assert running.process.stop() == 0, running.process.log
    added = recorderctl("user", "add", "alice", "--password-stdin", "--config", config,
                        stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    code, out, err = _ctl("token", "add", "alice", "--config", config)  # audited, plain
    assert code == 0, err
    assert not any(str(s).startswith("hmac-sha256:") for s in _seals(data).values())

    # The key, made by recorderctl; recorderd started with it takes it into use.
    key_file = tmp_path / "seal.key"
    code, out, err = _ctl("seal-key", "init", "--key-file", key_file)
    assert code == 0, err
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    key = SealKey(key_file.read_bytes())
    assert key.id in out
    seal_line = f'seal_key_file = "{key_file}"\n'
    config, data, running = start_recorderd(tmp_path, processes, devices=("1001", "1002"),
                                            storage=seal_line)
    assert running.process is not None
    assert f"took seal key {key.id} into use: 2 recording(s) re-sealed" in running.log()
    conn = running.connect()
    new = int(record(conn, "1001", 0.5)["RECORDID"])
    conn.close()
    status, _ = running.web(f"type=export&requestid=1&uniquefield=ident&uniqueid={new}"
                            "&media_format=WAV")  # audited by recorderd, keyed
    assert status == 200
    assert running.process.stop() == 0, running.process.log
    seals = _seals(data)
    assert all(str(seals[i]).startswith("hmac-sha256:") for i in (*old, new)), seals

    # Untouched, old and new check with the key (the configuration names it).
    code, out, err = _ctl("verify", "--config", config)
    assert code == 0, out + err
    assert f"seals checked with seal key {key.id}" in out
    assert "3 recording(s) checked: 3 as stored, 0 problem(s)" in out
    code, out, err = _ctl("audit", "verify", "--config", config)
    assert code == 0, out + err
    assert f"sealed with seal key {key.id} since entry" in out

    # Without the key, or with another, the checks refuse to vouch for anything (2).
    unkeyed_config = tmp_path / "nokey.toml"
    unkeyed_config.write_text(config.read_text().replace(seal_line, ""))
    code, out, err = _ctl("verify", "--config", unkeyed_config)
    assert code == 2
    assert "--seal-key-file" in err
    other = tmp_path / "other.key"
    assert _ctl("seal-key", "init", "--key-file", other)[0] == 0
    code, out, err = _ctl("audit", "verify", "--config", config, "--seal-key-file", other)
    assert code == 2
    assert f"is not the one this data directory is sealed with ({key.id}" in err
    # recorderd without the key refuses to add unkeyed evidence to it, with the exit that
    # tells systemd a restart cannot help (78, RestartPreventExitStatus).
    refused = RecorderProcess(["--config", str(unkeyed_config)])
    processes.append(refused)
    assert refused.proc.wait(90) == 78
    assert refused.stop() == 78
    assert "sealed with a seal key" in refused.log
    # Nor does it take another key: the configuration names the wrong one (78 as well).
    other_config = tmp_path / "otherkey.toml"
    other_config.write_text(config.read_text().replace(
        seal_line, f'seal_key_file = "{other}"\n'))
    wrong = RecorderProcess(["--config", str(other_config)])
    processes.append(wrong)
    assert wrong.proc.wait(90) == 78
    assert f"is not the one this data directory is sealed with ({key.id}" in wrong.log

    # Forgeries. A row changed and sealed with plain SHA-256, another with a key of the
    # forger's own: both found, each named.
    _forge_row(data, old[0], None)
    _forge_row(data, new, b"k" * 32)
    code, out, err = _ctl("verify", "--config", config)
    assert code == 1, out
    assert f"RECORDID {old[0]}: sealed without the seal key" in out
    assert f"RECORDID {new}: its row was changed after it was sealed" in out
    assert f"RECORDID {old[1]}" not in out

    # An audit entry edited and the chain re-hashed from it, both heads rewritten to match:
    # without the key the forger can only re-hash with plain SHA-256, which shows.
    db = _db(data)
    try:
        exported = db.execute("SELECT entry_id FROM audit WHERE action = 'export'").fetchone()[0]
    finally:
        db.close()
    _rehash_chain(data, exported, detail="nothing was exported")
    code, out, err = _audit_verify_out(config)
    assert code == 1, out
    assert f"entry {exported}: hashed without the seal key" in out

    # Everything re-hashed and re-sealed without the key, as if it had never been used: with
    # the key set, that shows too.
    _rehash_chain(data, 1)
    for ident in (*old, new):
        db = _db(data)
        try:
            values = db.execute(f"SELECT {', '.join(ROW_SEAL_COLUMNS)} FROM recordings WHERE "
                                "ident = ?", (ident,)).fetchone()
            db.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?",
                       (row_seal(values), ident))
        finally:
            db.close()
    code, out, err = _audit_verify_out(config)
    assert code == 1, out
    assert "the seal key is set but no entry was sealed with it" in out
    code, out, err = _ctl("verify", "--config", config)
    assert code == 1, out
    assert "nothing in this data directory was sealed with it" in out


def _audit_verify_out(config: Path) -> tuple[int, str, str]:
    return _ctl("audit", "verify", "--config", config)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_offline_commands_without_the_key_refuse_to_add_unkeyed_evidence(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    key_file = tmp_path / "seal.key"
    assert _ctl("seal-key", "init", "--key-file", key_file)[0] == 0
    config, data, running = start_recorderd(
        tmp_path, processes, storage=f'seal_key_file = "{key_file}"\n')
    assert running.process is not None
    assert running.process.stop() == 0, running.process.log
    db = _db(data)
    try:
        db.execute("INSERT INTO users (username, first_name, last_name, add_time) VALUES"
                   " ('bob', 'Bob', 'B', 0)")
    finally:
        db.close()
    # The configuration names a key this shell cannot read (a systemd credential, say).
    config.write_text(config.read_text().replace(str(key_file), str(tmp_path / "gone.key")))
    code, out, err = _ctl("token", "add", "bob", "--config", config)
    assert code == 2, out + err
    assert "sealed with a seal key" in err
    db = _db(data)
    try:
        assert db.execute("SELECT count(*) FROM api_tokens").fetchone()[0] == 0
    finally:
        db.close()
    # Named in the environment, it is used: the new entry is keyed and the chain checks.
    env = {"RECORDER_SEAL_KEY_FILE": str(key_file)}
    code, out, err = _ctl("token", "add", "bob", "--config", config, env=env)
    assert code == 0, out + err
    code, out, err = _ctl("audit", "verify", "--config", config, env=env)
    assert code == 0, out + err
    db = _db(data)
    try:
        (last,) = db.execute("SELECT entry_hash FROM audit ORDER BY entry_id DESC LIMIT 1"
                             ).fetchone()
    finally:
        db.close()
    assert last.startswith("hmac-sha256:")


# --- the formats and the chain's rules, on plain values -----------------------------------------


def test_a_keyed_seal_is_an_hmac_of_the_documented_json_under_the_key() -> None:
    values = [None] * len(ROW_SEAL_COLUMNS)
    # Schema 11's document: the columns, then the blackout marks (docs/storage.md).
    doc = json.dumps(["recorder-row/2", [[c, None] for c in ROW_SEAL_COLUMNS],
                      [[1.5, 2.0]]], separators=(",", ":")).encode()
    assert row_seal(values, [(1.5, 2.0)]) == hashlib.sha256(doc).hexdigest()
    assert keyed_row_seal(values, KEY.secret, [(1.5, 2.0)]) == (
        "hmac-sha256:" + hmac.new(KEY.secret, doc, hashlib.sha256).hexdigest())
    assert keyed_row_seal(values, b"x" * 32) != keyed_row_seal(values, KEY.secret)
    entry = keyed_audit_hash(1, 5.0, None, key=KEY.secret, username="", action="a",
                             target="", detail="", address="", prev_hash=GENESIS)
    doc = json.dumps(["recorder-audit/1", 1, 5.0, None, "", "a", "", "", "", GENESIS],
                     separators=(",", ":")).encode()
    assert entry == "hmac-sha256:" + hmac.new(KEY.secret, doc, hashlib.sha256).hexdigest()


def _chain(kinds: str, key: bytes = KEY.secret, start: int = 1,
           prev: str = GENESIS) -> list[ChainedEntry]:
    """Entries ``start``..., each plain ("p") or keyed ("k"), chained from ``prev``."""
    entries = []
    for offset, kind in enumerate(kinds):
        entry_id = start + offset
        fields = {"username": "u", "action": "a", "target": "", "detail": f"d{entry_id}",
                  "address": "", "prev_hash": prev}
        made = (audit_hash(entry_id, 10.0, None, **fields) if kind == "p" else
                keyed_audit_hash(entry_id, 10.0, None, key=key, **fields))
        entries.append(ChainedEntry(entry_id, 10.0, None, "u", "a", "", f"d{entry_id}", "",
                                    prev, made))
        prev = made
    return entries


def test_the_chain_checks_keyed_entries_with_the_key_and_refuses_plain_ones_after_them() -> None:
    good = AuditTrailState(None, _chain("ppkk"))
    assert check_chain(good, [], False, key=KEY.secret) == []
    without = check_chain(good, [], False)
    assert [f.failed for f in without] == [False]  # links only: said, not failed
    # A plain entry after a keyed one, correctly linked: re-hashed without the key.
    downgraded = AuditTrailState(None, _chain("pkp"))
    (finding,) = check_chain(downgraded, [], False, key=KEY.secret)
    assert finding.entry_id == 3
    assert "hashed without the seal key" in finding.message
    # Keyed with another key: its contents do not match.
    forged = AuditTrailState(None, _chain("pk", key=b"z" * 32))
    (finding,) = check_chain(forged, [], False, key=KEY.secret)
    assert finding.message == "entry 2: edited (its contents do not match its hash)"
    # The key set, nothing keyed: everything made with it removed, or never made.
    (finding,) = check_chain(AuditTrailState(None, _chain("ppp")), [], False, key=KEY.secret)
    assert "no entry was sealed with it" in finding.message
    assert check_chain(AuditTrailState(None, []), [], False, key=KEY.secret) == []
    # Purged through the key's first entries: a keyed anchor counts.
    tail = _chain("kk", start=8, prev="hmac-sha256:" + "0" * 64)
    anchored = AuditTrailState(AuditAnchor(7, "hmac-sha256:" + "0" * 64), tail)
    assert check_chain(anchored, [], False, key=KEY.secret) == []


def test_sealing_refuses_a_keyed_store_without_the_key_and_follows_the_chain_with_it() -> None:
    values = [None] * len(ROW_SEAL_COLUMNS)
    plain = Sealing(missing="storage.seal_key_file is not set")
    assert plain.row_seal(values, keyed=False) == row_seal(values)
    with pytest.raises(Exception, match=r"storage\.seal_key_file is not set"):
        plain.row_seal(values, keyed=True)
    with pytest.raises(Exception, match="sealed with a seal key"):
        plain.audit_hash(2, 1.0, None, username="", action="", target="", detail="",
                         address="", prev_hash="hmac-sha256:" + "0" * 64)
    # recorderctl with the key, on a store not keyed yet: plain, as recorderd left it.
    offline = Sealing(KEY)
    assert offline.row_seal(values, keyed=False) == row_seal(values)
    assert offline.row_seal(values, keyed=True) == keyed_row_seal(values, KEY.secret)
    # recorderd: keyed from the start.
    active = Sealing(KEY, active=True)
    assert active.row_seal(values, keyed=False) == keyed_row_seal(values, KEY.secret)


def test_a_seal_key_file_that_cannot_be_used_stops_recorderd_naming_the_key(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config = tmp_path / "r.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      'seal_key_file = "seal.key"\n[api]\nsocket_port = 0\nweb_port = 0\n'
                      '[[boards]]\ndriver = "synthetic"\ndevices = ["1001"]\n')
    checked = recorderctl("check-config", "--config", config)
    assert checked.returncode != 0
    assert f"storage.seal_key_file: {tmp_path / 'seal.key'} does not exist" in (
        checked.stdout + checked.stderr)
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    assert proc.proc.wait(90) == 78
    assert proc.stop() == 78
    assert "storage.seal_key_file" in proc.log
    # Made by recorderctl (relative to the configuration's directory), never overwritten.
    code, out, err = _ctl("seal-key", "init", "--config", config)
    assert code == 0, err
    (tmp_path / "seal.key").chmod(0o644)
    loose = recorderctl("check-config", "--config", config)
    assert "readable or writable by others" in loose.stdout + loose.stderr
    (tmp_path / "seal.key").chmod(0o600)
    code, _, err = _ctl("seal-key", "init", "--config", config)
    assert code == 1
    assert "never overwritten" in err
    code, key_id, err = _ctl("seal-key", "id", "--config", config)
    assert code == 0, err
    assert key_id.strip() == SealKey((tmp_path / "seal.key").read_bytes()).id
    assert key_id.strip() in out
