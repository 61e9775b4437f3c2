"""The whole chain, sample for sample: a file board's audio comes out of CALLLIST's FILENAME."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from tests.helpers.api import result_code
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_file_board_is_recorded_bit_exact(tmp_path: Path, start_recorder: Any) -> None:
    rng = np.random.default_rng(7)
    source = rng.integers(-20000, 20000, 4000, dtype=np.int16)  # 0.5 s of unique noise
    soundfile.write(tmp_path / "line.wav", source, 8000, subtype="PCM_16")
    running = start_recorder(boards=[{"driver": "file", "files": ["line.wav"],
                                      "devices": ["2001"]}])
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="2001")) == 20
    running.wait_recorded("2001", 1.3)  # the call's own audio: a loaded machine captures late
    assert result_code(conn.request("CALLSTOP", 2, deviceid="2001")) == 20
    found = conn.request("CALLLIST", 3, deviceid="2001").find("SEARCHRESULT")
    assert found is not None
    recorded, rate = soundfile.read(found.findtext("FILENAME"), dtype="int16")
    assert rate == 8000
    assert 1.25 * 8000 < len(recorded) < 3.0 * 8000
    # The recording is the looped source from wherever the call began, with nothing lost,
    # repeated or altered on the way.
    offset = next(i for i in range(len(source))
                  if np.array_equal(np.roll(source, -i)[:64], recorded[:64]))
    np.testing.assert_array_equal(recorded, np.resize(np.roll(source, -offset), len(recorded)))
