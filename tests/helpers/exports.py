"""Shared by the export and e-mail tests: tone lines to record, a call to record on them, what
the independent tools (sox, ffmpeg) make of an export, and WebAPI exports asked for the way a
client does (``Reply``), with the checks the export-room tests make of them. No tests here."""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from lxml import etree

from tests.helpers.api import ApiConnection, expect, fields, result_code
from tests.helpers.audio import ffmpeg_decode, ffprobe, run

PREROLL = 0.5  # capture.preroll_seconds' default: a recording starts this long before CALLSTART


def tone(path: Path, hz: float, rate: int = 8000, seconds: float = 2.0) -> Path:
    """A sine a file board can loop without a click (whole cycles in ``seconds``)."""
    t = np.arange(round(rate * seconds)) / rate
    soundfile.write(path, np.rint(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), rate,
                    subtype="PCM_16")
    return path


def tone_boards(directory: Path) -> list[dict[str, Any]]:
    """Lines 2001 (440 Hz) and 2002 (1 kHz) at 8 kHz, 2003 (660 Hz) at 16 kHz."""
    return [
        {"driver": "file", "devices": ["2001", "2002"],
         "files": [str(tone(directory / "a440.wav", 440)),
                   str(tone(directory / "b1000.wav", 1000))]},
        {"driver": "file", "devices": ["2003"],
         "files": [str(tone(directory / "c660.wav", 660, rate=16000))]},
    ]


def record(conn: ApiConnection, device: str, seconds: float, **meta: str) -> dict[str, str]:
    """CALLSTART, ``seconds``, CALLSTOP on ``device``; its CALLLIST row."""
    expect(conn.request("CALLSTART", 1, deviceid=device, **meta), 20)
    time.sleep(seconds)
    expect(conn.request("CALLSTOP", 2, deviceid=device), 20)
    return fields(conn.request("CALLLIST", 3, deviceid=device, callcount=1).find("SEARCHRESULT"))


def dominant_hz(samples: npt.NDArray[np.int16], rate: int) -> float:
    """The strongest frequency in ``samples`` (mono, or the channels' mean)."""
    x = samples.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def decode(path: Path, fmt: str, rate: int = 8000) -> tuple[npt.NDArray[np.int16], int]:
    """What the independent tools make of an export: (samples, rate). VOX goes through sox
    (it says neither rate nor anything else), everything else through ffmpeg at its own rate."""
    if fmt == "vox":
        wav = path.with_suffix(".vox.wav")
        run("sox", "-t", "vox", "-r", str(rate), path, "-b", "16", wav)
        path = wav
    info = ffprobe(path)
    return ffmpeg_decode(path, channels=int(info["channels"])), int(info["sample_rate"])


# --- WebAPI exports as a client asks for them ---------------------------------------------------

REFUSALS = {2, 47}  # out of room; too many exports (or requests) at once: docs/api-notes.md


def rows(data: Path, device: str) -> list[sqlite3.Row]:
    """The device's recordings, as the database in ``data`` holds them."""
    with contextlib.closing(sqlite3.connect(data / "recorder.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM recordings WHERE device_id = ? ORDER BY ident",
                          (device,)).fetchall()


def combined(ident: str, times: int, fmt: str = "wav", spelling: str = "combinedexport") -> str:
    """The WebAPI query of COMBINEDEXPORT of recording ``ident``, ``times`` over."""
    return f"type={spelling}&requestid={times}&ident={','.join([ident] * times)}" \
        f"&media_format={fmt}"


@dataclass
class Answer:
    """One WebAPI answer: media (its content type and bytes) or a RESULT."""

    query: str
    status: int
    content_type: str
    body: bytes

    @property
    def media(self) -> bool:
        return not self.content_type.startswith("text/xml")

    @property
    def result(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def code(self) -> int:
        """0 for media, else the RESULT's code."""
        return 0 if self.media else result_code(self.result)


class _SmallWindow(http.client.HTTPConnection):
    """A connection whose receive buffer stays small: a client that does not read holds the
    server's sending (and its export file) back, as a slow link does, instead of the kernel
    taking megabytes of it in on its behalf."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = sock


class Reply:
    """A WebAPI answer whose headers have come; its body is read when ``read`` is called."""

    def __init__(self, web_port: int, query: str) -> None:
        self.query = query
        self._conn = _SmallWindow("127.0.0.1", web_port, timeout=60)
        self._conn.request("GET", f"/webAPI.aspx?{query}")
        self._response = self._conn.getresponse()
        self.status = self._response.status
        self.content_type = self._response.headers["Content-Type"] or ""
        self.media = not self.content_type.startswith("text/xml")

    def read(self, bytes_per_second: float | None = None) -> Answer:
        """The whole answer; at most ``bytes_per_second`` (a client on a real link), else as
        fast as the loopback gives it."""
        try:
            if bytes_per_second is None:
                body = self._response.read()
            else:
                chunks, began = [], time.monotonic()
                while chunk := self._response.read(64 * 1024):
                    chunks.append(chunk)
                    done = sum(map(len, chunks))
                    time.sleep(max(0.0, began + done / bytes_per_second - time.monotonic()))
                body = b"".join(chunks)
            return Answer(self.query, self.status, self.content_type, body)
        finally:
            self._conn.close()


def summary(answers: list[Answer]) -> str:
    """"43 exports: 39 sent, 4 answered 2", for the test's output."""
    codes = [answer.code for answer in answers]
    return f"{len(answers)} exports: {codes.count(0)} sent" + "".join(
        f", {codes.count(c)} answered {c}" for c in sorted(set(codes)) if c)


def check_answers(answers: list[Answer], rate: int, frames: int) -> None:
    """Each answer is its whole media, or a refusal in words (2 or 47): never 11, never
    anything else. ``frames``: the recording every COMBINEDEXPORT repeats, at ``rate``."""
    for answer in answers:
        assert answer.status == 200, (answer.query[:80], answer.status, answer.body[:300])
        if not answer.media:
            message = answer.result.findtext("RESULTMSG") or ""
            assert answer.code in REFUSALS, (answer.query[:80], answer.body[:400])
            assert len(message.split()) >= 4, answer.body  # says why, in words
            continue
        if "combine" in answer.query.lower() and "media_format=wav" in answer.query:
            times = answer.query.split("&ident=")[1].split("&")[0].count(",") + 1
            info = soundfile.info(io.BytesIO(answer.body))
            assert (info.samplerate, info.frames) == (rate, times * frames)
            assert len(answer.body) == 44 + 2 * times * frames  # all of it, nothing cut
        else:
            assert len(answer.body) > 1000, answer.query


def check_live(data: Path, device: str, hz: float, seconds: float) -> None:
    """The device's call is one recording, ended by its CALLSTOP, that plays its tone."""
    recordings = rows(data, device)
    assert [r["stop_reason"] for r in recordings] == ["callstop"], [dict(r) for r in recordings]
    (row,) = recordings
    assert row["status"] == "complete"
    assert row["duration"] >= seconds, dict(row)
    info = soundfile.info(row["filename"])
    assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-3)
    samples, rate = soundfile.read(row["filename"], dtype="int16")
    assert dominant_hz(samples, rate) == pytest.approx(hz, abs=5)
