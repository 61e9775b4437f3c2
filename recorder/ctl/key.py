"""``recorderctl key``: the master key of encrypted recordings (docs/encryption.md): make one
(``init``), name it (``id``), and replace it (``rotate``), which re-wraps every recording's file
key without touching the recordings' bytes."""

from __future__ import annotations

import argparse
import os
import signal
import time
import tomllib
from pathlib import Path

from recorder.config.model import Config, resolve_config_path
from recorder.crypt.keyring import load_keys, new_key_path, read_status
from recorder.crypt.keys import (
    CryptKeyError,
    MasterKey,
    WrappedKey,
    create_master_key,
    key_path,
    load_master_key,
    read_wrapped,
    rewrap,
    write_wrapped,
)
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    offline_config,
    open_offline_store,
)
from recorder.durable import fsync_directory
from recorder.errors import CodecError, StoreError
from recorder.service.datalock import DataDirBusy, DataDirLock, running_holder

RELOAD_WAIT_SECONDS = 60.0  # how long a running recorderd may take to reload its keys

EPILOG = """init: 32 random bytes, mode 0600, in --key-file (default: the configuration's
storage.key_file); an existing file is never overwritten. Keep a copy offline: losing the key
file is losing every recording it encrypts.
id: the key id of the key file (what an encrypted recording's KEY file names).
rotate: makes a new key (KEY_FILE.new), re-wraps the file key beside every recording under the
data directory and in every row with it, then makes it the key file and keeps the old one as
KEY_FILE.retired-<id> until you destroy it. The recordings' bytes do not change. With recorderd
running it is told (SIGHUP) to wrap new files by the new key first, and to drop the old one at
the end; it must read this key file (not a copy: under systemd's LoadCredential=, stop the
service first). Cut short, it is finished by running it again.
restore: puts back the wrapped key beside each encrypted recording whose own is missing or
damaged, from the copy its row keeps (checked to be that file's and to open it first).

exit status:
  0  done
  1  a key could not be made, read, re-wrapped or restored (each named), or recorderd did not
     take up the new key in time
  2  usage or configuration error, or no key file"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "key", "make, name or rotate the recordings' master key",
                     EPILOG, run)
    parser.add_argument("action", choices=("init", "id", "rotate", "restore"))
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the key file (default: the configuration's storage.key_file)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")
    parser.add_argument("--wait", type=float, default=RELOAD_WAIT_SECONDS, metavar="SECONDS",
                        help="rotate: how long a running recorderd may take to take up a key "
                        f"(default {RELOAD_WAIT_SECONDS:g})")


def _storage_table(args: argparse.Namespace) -> tuple[dict[str, object], Path]:
    """The configuration's [storage] table as written, and the directory it is relative to.

    Read raw rather than loaded: loading checks the key file, which `key init` is here to
    make."""
    source = resolve_config_path(getattr(args, "config", None))
    if source is None:
        return {}, Path.cwd()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CtlError(f"{source}: {exc}", EXIT_USAGE) from exc
    storage = raw.get("storage", {})
    return (storage if isinstance(storage, dict) else {}), source.parent


def key_file_of(args: argparse.Namespace) -> Path:
    """--key-file, else the configuration's storage.key_file; CtlError 2 if neither."""
    if args.key_file is not None:
        return Path(args.key_file)
    storage, base = _storage_table(args)
    configured = storage.get("key_file")
    if not isinstance(configured, str) or not configured:
        raise CtlError("no key file: give --key-file, or set storage.key_file", EXIT_USAGE)
    path = Path(configured).expanduser()
    return path if path.is_absolute() else base / path


def _load(path: Path) -> MasterKey:
    try:
        return load_master_key(path)
    except CryptKeyError as exc:
        raise CtlError(f"storage.key_file: {exc}", EXIT_USAGE) from exc


def run(args: argparse.Namespace) -> int:
    path = key_file_of(args)
    if args.action == "init":
        try:
            made = create_master_key(path)
        except CryptKeyError as exc:
            raise CtlError(str(exc), EXIT_FAILED) from exc
        print(f"made {path} (key id {made.id}); keep a copy offline: without it the "
              f"recordings it encrypts cannot be opened")
        return EXIT_OK
    if args.action == "id":
        print(_load(path).id)
        return EXIT_OK
    if args.action == "restore":
        return restore(path, offline_config(args))
    return rotate(path, offline_config(args), args.wait)


def rotate(path: Path, config: Config, wait: float = RELOAD_WAIT_SECONDS) -> int:
    """Re-wrap every file key under the recordings directory and in the rows with a new key,
    then make it ``path``; a running recorderd is reloaded before and after (see EPILOG)."""
    recordings = config.storage.recordings_dir
    new_path = new_key_path(path)
    service = _Service.find(config.storage.data_dir, wait)
    if service is not None and service.pid is not None and not _same(
            path, config.storage.key_file):
        service.release()
        raise CtlError(f"recorderd (pid {service.pid}) reads its key from "
                       f"{config.storage.key_file or 'no file'}, not {path} (a systemd "
                       "credential is a copy made at its start): stop it, rotate, start it",
                       EXIT_USAGE)
    if not path.exists() and new_path.exists():
        # Cut short after the old key was retired: what is left is to put the new one in place.
        new_path.replace(path)
        fsync_directory(path.parent)
        new = _load(path)
        if service is not None:
            service.reload(new, [new])
        print(f"finished a rotation: {path} is key {new.id}")
        return EXIT_OK
    old = _load(path)
    try:
        new = _load(new_path) if new_path.exists() else create_master_key(new_path, path)
        if service is not None:
            # From here on recorderd wraps new files by the new key (and still opens the old
            # ones): every file wrapped by the old key is already there to be re-wrapped.
            service.reload(new, [new, old])
        done, failed = _rewrap_all(recordings, old, new)
        in_rows, failed_rows = _rewrap_rows(config, old, new)
        failed += failed_rows
        if failed:
            print(f"{failed} file key(s) could not be re-wrapped (above); {path} is still key "
                  f"{old.id}; run again once they are dealt with")
            return EXIT_FAILED
        retired = path.with_name(f"{path.name}.retired-{old.id}")
        os.replace(path, retired)
        os.replace(new_path, path)
        fsync_directory(path.parent)
        if service is not None:
            service.reload(new, [new])  # the old key leaves the service's memory
    finally:
        if service is not None:
            service.release()
    print(f"re-wrapped {done} file key(s) beside the recordings and {in_rows} in their rows; "
          f"{path} is now key {new.id}; the old key is "
          f"{retired} (destroy it once backups of the key files made before now are gone)")
    return EXIT_OK


def _same(path: Path, configured: str) -> bool:
    """Whether the service's storage.key_file is ``path``."""
    try:
        return bool(configured) and Path(configured).resolve() == path.resolve()
    except OSError:
        return False


class _Service:
    """The recorderd running on the data directory, if any (else the directory is locked for
    the rotation): told to reload its keys, and watched until it says it has."""

    def __init__(self, data_dir: Path, pid: int | None, lock: DataDirLock | None,
                 wait: float) -> None:
        self.data_dir, self.pid, self._lock, self._wait = data_dir, pid, lock, wait

    @classmethod
    def find(cls, data_dir: Path, wait: float) -> _Service | None:
        """The running recorderd (None: none runs, and the directory is now locked)."""
        lock = DataDirLock(data_dir)
        try:
            lock.acquire()
        except DataDirBusy as exc:
            pid = exc.pid or running_holder(data_dir)
            if pid is None:
                raise CtlError(f"{data_dir} is in use by a process that is not recorderd: "
                               "stop it first", EXIT_USAGE) from exc
            return cls(data_dir, pid, None, wait)
        except FileNotFoundError:
            return None  # no data directory: no recordings either
        except OSError as exc:
            raise CtlError(f"cannot lock {lock.path}: {exc.strerror or exc}",
                           EXIT_USAGE) from exc
        return cls(data_dir, None, lock, wait)

    def reload(self, sealing: MasterKey, opening: list[MasterKey]) -> None:
        """Have recorderd reload its keys and wait until it wraps new files by ``sealing``
        and opens them with ``opening`` (its keys-in-use file says so)."""
        if self.pid is None:
            return
        want = [k.id for k in opening]
        try:
            os.kill(self.pid, signal.SIGHUP)
        except OSError as exc:
            raise CtlError(f"cannot signal recorderd (pid {self.pid}): {exc.strerror or exc}",
                           EXIT_FAILED) from exc
        deadline = time.monotonic() + self._wait
        while True:
            status = read_status(self.data_dir) or {}
            if (status.get("pid"), status.get("sealing"), status.get("opening")) == (
                    self.pid, sealing.id, want):
                print(f"recorderd (pid {self.pid}) wraps new files by key {sealing.id}")
                return
            if time.monotonic() > deadline:
                raise CtlError(
                    f"recorderd (pid {self.pid}) did not take up key {sealing.id} within "
                    f"{self._wait:g} s (its log says why; it must read this key file, not a "
                    "copy); run the rotation again", EXIT_FAILED)
            time.sleep(0.1)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()


def restore(path: Path, config: Config) -> int:
    """Put back the wrapped key beside each encrypted recording whose own is missing or does
    not open it, from its row."""
    from recorder.crypt.access import is_encrypted, restore_key  # noqa: PLC0415

    _, keys = load_keys_or_fail(path)
    if not config.storage.postgresql and not config.storage.database_path.is_file():
        print("no database: nothing to restore from")
        return EXIT_OK
    store = open_offline_store(config)
    restored = failed = 0
    try:
        if store.file_keys is None:
            return EXIT_OK
        for ident, filename, text in store.file_keys.file_keys():
            recording = Path(filename)
            if not recording.is_file() or not is_encrypted(recording):
                continue
            try:
                said = restore_key(recording, text, keys)
            except (CryptKeyError, CodecError, OSError) as exc:
                failed += 1
                print(f"RECORDID {ident}: {exc}")
                continue
            if "restored" in said:
                restored += 1
                print(f"RECORDID {ident}: {said}")
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    print(f"{restored} key file(s) restored from their rows; {failed} could not be")
    return EXIT_FAILED if failed else EXIT_OK


def load_keys_or_fail(path: Path) -> tuple[MasterKey, list[MasterKey]]:
    try:
        return load_keys(path)
    except CryptKeyError as exc:
        raise CtlError(f"storage.key_file: {exc}", EXIT_USAGE) from exc


def _rewrap_rows(config: Config, old: MasterKey, new: MasterKey) -> tuple[int, int]:
    """Re-wrap the keys the rows keep (none without a database yet)."""
    if not config.storage.postgresql and not config.storage.database_path.is_file():
        return 0, 0
    store = open_offline_store(config)
    done = failed = 0
    try:
        if store.file_keys is None:
            return 0, 0
        for ident, filename, text in store.file_keys.file_keys():
            try:
                wrapped = WrappedKey.from_text(text, f"the row of RECORDID {ident}")
                if wrapped.key_id == new.id:
                    continue
                # Only if unchanged: a running recorderd may have given the row a new file
                # (after-call encoding), wrapped by the new key already.
                store.file_keys.set_file_key(ident, rewrap(wrapped, old, new).to_text(),
                                             was=text)
                done += 1
            except CryptKeyError as exc:
                failed += 1
                print(f"RECORDID {ident} ({filename}): {exc}")
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    return done, failed


def _rewrap_all(recordings: Path, old: MasterKey, new: MasterKey) -> tuple[int, int]:
    done = failed = 0
    for sidecar in sorted(recordings.rglob("*.key")):
        recording = sidecar.with_name(sidecar.name[:-len(".key")])
        try:
            wrapped: WrappedKey = read_wrapped(recording)
            if wrapped.key_id == new.id:
                continue  # done by a rotation cut short, or made since the reload
            again = rewrap(wrapped, old, new)
            if not recording.exists():
                continue  # removed meanwhile (retention, after-call encoding)
            write_wrapped(recording, again)
            done += 1
        except (CryptKeyError, OSError) as exc:
            if not sidecar.exists():
                continue  # removed with its recording while it was being read
            failed += 1
            print(f"{key_path(recording)}: {exc}")
    return done, failed
