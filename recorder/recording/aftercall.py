"""After-call encoding: recordings are made as crash-safe PCM WAV, then become the stored format.

With ``storage.encode = "after-call"`` every call is recorded into PCM WAV (its row already says the
stored format) and handed here when it ends. A bounded pool (recorder.recording.transcode) converts
it and replaces the file atomically; the row is then pointed at the new file. At start-up, the
recordings the store still lists as WAV although stored as another format (the service stopped or
crashed before their turn, or their encoding waited for room on the disk) are queued again, so no
recording is ever left without a playable file, and none stays a WAV for good. A recording whose
encoding would take the room the live recordings need waits as a WAV (``room``, the disk guard).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recorder.codecs.stored import is_encrypted
from recorder.crypt.keyring import KeyRing
from recorder.crypt.keys import key_path, read_wrapped
from recorder.errors import StoreError
from recorder.recording.transcode import Room, Transcoder, find_unfinished
from recorder.store.recordings import RecordingStore

logger = logging.getLogger(__name__)


class AfterCallEncoder:
    def __init__(self, store: RecordingStore, fmt: str, recordings_dir: Path, workers: int,
                 options: Mapping[str, Any] | None = None, *, room: Room | None = None,
                 keys: KeyRing | None = None) -> None:
        self._store = store
        self.format = fmt
        self._recordings_dir = recordings_dir
        # ``room`` (the disk guard): a file is encoded only when its result fits beside the
        # live recordings' room; until then it stays a WAV (recording/transcode.py).
        # ``keys``: the results are encrypted with storage.encrypt, or when their WAV is.
        self._transcoder = Transcoder(fmt, self._done, workers, options, room=room, keys=keys)

    @property
    def pending(self) -> int:
        return self._transcoder.pending

    @property
    def deferred(self) -> int:
        """Recordings left as WAV until there is room to encode them."""
        return self._transcoder.deferred

    def retry_deferred(self) -> int:
        """Try the deferred recordings again now (they are also tried every few seconds)."""
        return self._transcoder.retry_deferred()

    def start(self) -> None:
        """Start the pool and queue what an earlier run left unconverted."""
        self._transcoder.start()
        try:
            rows = self._store.untranscoded_recordings([self.format])
        except StoreError as exc:
            # Expected while the database is away (its changes wait in the spool).
            logger.warning("cannot list the recordings still to transcode (%s); they stay WAV "
                           "until the next start", exc)
            return
        wanted = {Path(row.filename) for row in rows}
        if self._recordings_dir.is_dir():
            # Removes half-written .part files; lists the WAVs on disk.
            for wav in find_unfinished(self._recordings_dir, self.format):
                final = wav.with_suffix("." + self._transcoder.extension)
                if wav not in wanted and final.exists():
                    # Converted and its row pointed at the result, then the process died
                    # before it could remove the WAV: finish that last step.
                    logger.info("after-call: removing %s, already converted to %s", wav,
                                final.name)
                    wav.unlink(missing_ok=True)
                    key_path(wav).unlink(missing_ok=True)
        queued = sum(self._transcoder.submit(Path(row.filename)) for row in rows)
        if queued:
            logger.info("after-call: %d recording(s) from before the start queued for %s",
                        queued, self.format)

    def submit(self, wav: Path) -> None:
        self._transcoder.submit(wav)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._transcoder.wait_idle(timeout)

    def stop(self) -> None:
        self._transcoder.stop()

    def join(self, timeout: float | None = None) -> bool:
        return self._transcoder.join(timeout)

    def _done(self, wav: Path, result: Path, size: int, sha256: str) -> None:
        # Raising keeps the WAV (transcode_file deletes it only after this succeeds), so a
        # store that is away loses nothing: the next start converts it again.
        # An encrypted result's wrapped key, beside it, goes to its row too.
        file_key = read_wrapped(result).to_text() if is_encrypted(result) else ""
        if not self._store.replace_recording_file(str(wav), str(result), self.format, size,
                                                  sha256, file_key=file_key):
            logger.warning("after-call: no recording row has %s; converted anyway", wav)
