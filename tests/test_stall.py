"""A stalled recorder: a real recorderd stopped with SIGSTOP mid-call, then continued.

The audio the line delivered while the process was stopped never reached it: the capture core
writes the gap as silence, so every later sample keeps its place on the call's timeline, and
that silence is lost audio. The row's lost-samples count, /metrics (recorder_dropped_samples
_total{kind="gap"}), CHANNELS (GAPFRAMES) and recorderctl channels must all say so. Stalls
shorter and longer than the rings' look-back: a longer one also overwrites audio the writer
had not read yet (an overrun); each lost sample is counted once, as one or the other.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers.ctl import recorderctl
from tests.helpers.recorders import RecorderProcess, start_recorderd

RATE = 8000


def _longest_zero_run(samples: np.ndarray) -> int:
    zero = np.concatenate(([False], samples == 0, [False]))
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def _row(data: Path) -> sqlite3.Row:
    with sqlite3.connect(data / "recorder.sqlite3") as db:
        db.row_factory = sqlite3.Row
        (row,) = db.execute("SELECT * FROM recordings").fetchall()
        return row  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize(("stall", "lookback"), [(3.0, 10.0), (3.0, 2.0)],
                         ids=["within-the-look-back", "longer-than-the-look-back"])
def test_a_stall_written_as_silence_is_counted_as_lost_audio(
        tmp_path: Path, processes: list[RecorderProcess], stall: float,
        lookback: float) -> None:
    config, data, running = start_recorderd(tmp_path, processes)
    config.write_text(config.read_text() + f"[capture]\nlookback_seconds = {lookback}\n")
    processes[0].stop()
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    running.data_dir = data
    time.sleep(1.0)  # the line is running
    assert running.request("CALLSTART", 1, DEVICEID="1001").findtext("RESULTCODE") == "20"
    time.sleep(1.0)
    proc.proc.send_signal(signal.SIGSTOP)
    time.sleep(stall)
    proc.proc.send_signal(signal.SIGCONT)
    time.sleep(1.5)
    assert running.request("CALLSTOP", 2, DEVICEID="1001").findtext("RESULTCODE") == "20"

    row = _row(data)
    audio, rate = soundfile.read(row["filename"], dtype="int16")
    assert rate == RATE
    silence = _longest_zero_run(audio)
    # The stall is in the file as silence, at its length (what the driver or the board clock
    # found missing: the stall less the moment the process needs to notice it).
    assert stall - 0.3 <= silence / RATE <= stall + 0.3, silence / RATE
    gap = running.metric('recorder_dropped_samples_total{channel="1",device="1001",kind="gap"}')
    overrun = running.metric(
        'recorder_dropped_samples_total{channel="1",device="1001",kind="overrun"}')
    assert gap / RATE == pytest.approx(stall, abs=0.3)
    # The row counts the silence as lost audio (a line's own sample of value 0 next to it may
    # lengthen the run by one). Each lost position counts once, in the row and in /metrics:
    # as a gap (input the stopped process never took in) or as an overrun (audio the ring
    # lapped before the writer read it), never as both.
    assert row["lost_samples"] >= silence - 2
    assert row["lost_samples"] == gap + overrun
    if lookback > stall:
        assert overrun == 0
    else:
        # Only what the writer had not read when the process stopped, not the gap's
        # positions the ring lapped too (a second of them here).
        assert overrun < RATE // 2, overrun
    # The channel's status says the same, in CHANNELS and recorderctl channels.
    channels = running.request("CHANNELS", 3, DETAIL="Y")
    (channel,) = [c for c in channels.iter("CHANNEL")
                  if c.findtext("RECORDINGDEVICE") == "1001"]
    assert int(channel.findtext("GAPFRAMES") or 0) == gap
    assert int(channel.findtext("GAPS") or 0) >= 1
    shown = recorderctl(running, "channels", "--json")
    assert shown.returncode == 0, shown.stderr
    (listed,) = [c for c in json.loads(shown.stdout) if c["device"] == "1001"]
    assert listed["gap_frames"] == gap
    assert proc.stop() == 0, proc.log
