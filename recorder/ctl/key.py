"""``recorderctl key``: the master key of encrypted recordings (docs/encryption.md): make one
(``init``), name it (``id``), and replace it (``rotate``), which re-wraps every recording's file
key without touching the recordings' bytes."""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path

from recorder.config.model import Config, resolve_config_path
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
from recorder.errors import StoreError
from recorder.service.datalock import DataDirBusy, DataDirLock

EPILOG = """init: 32 random bytes, mode 0600, in --key-file (default: the configuration's
storage.key_file); an existing file is never overwritten. Keep a copy offline: losing the key
file is losing every recording it encrypts.
id: the key id of the key file (what an encrypted recording's KEY file names).
rotate (recorderd stopped): makes a new key (KEY_FILE.new), re-wraps the file key beside every
recording under the data directory with it, then makes it the key file and keeps the old one as
KEY_FILE.retired-<id> until you destroy it. The recordings' bytes do not change. Cut short, it
is finished by running it again.

exit status:
  0  done
  1  a key could not be made, read or re-wrapped (each named)
  2  usage or configuration error, no key file, or recorderd is running"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "key", "make, name or rotate the recordings' master key",
                     EPILOG, run)
    parser.add_argument("action", choices=("init", "id", "rotate"))
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the key file (default: the configuration's storage.key_file)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


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
    return rotate(path, offline_config(args))


def rotate(path: Path, config: Config) -> int:
    """Re-wrap every file key under the recordings directory and in the rows with a new key,
    then make it ``path``."""
    recordings = config.storage.recordings_dir
    new_path = path.with_name(path.name + ".new")
    if not path.exists() and new_path.exists():
        # Cut short after the old key was retired: what is left is to put the new one in place.
        new_path.replace(path)
        fsync_directory(path.parent)
        print(f"finished a rotation: {path} is key {_load(path).id}")
        return EXIT_OK
    old = _load(path)
    lock = DataDirLock(recordings.parent)
    try:
        lock.acquire()
    except DataDirBusy as exc:
        raise CtlError(f"{recordings.parent} is in use (recorderd?): stop it first, or new "
                       "recordings would be wrapped by the old key meanwhile", EXIT_USAGE) from exc
    except OSError as exc:
        raise CtlError(f"cannot lock {lock.path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    try:
        new = _load(new_path) if new_path.exists() else create_master_key(new_path)
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
    finally:
        lock.release()
    print(f"re-wrapped {done} file key(s) beside the recordings and {in_rows} in their rows; "
          f"{path} is now key {new.id}; the old key is "
          f"{retired} (destroy it once backups of the key files made before now are gone)")
    return EXIT_OK


def _rewrap_rows(config: Config, old: MasterKey, new: MasterKey) -> tuple[int, int]:
    """Re-wrap the keys the rows keep (none without a database yet)."""
    if not config.storage.database_path.is_file():
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
                store.file_keys.set_file_key(ident, rewrap(wrapped, old, new).to_text())
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
                continue  # done by a rotation cut short
            write_wrapped(recording, rewrap(wrapped, old, new))
            done += 1
        except (CryptKeyError, OSError) as exc:
            failed += 1
            print(f"{key_path(recording)}: {exc}")
    return done, failed
