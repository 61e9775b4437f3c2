"""Recording file names: the manual's layout, unique, and never outside the recordings tree."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from recorder.recording.paths import create_unique, recording_path, safe_component

WHEN = datetime(2011, 1, 31, 17, 3, 14)


def test_layout_follows_the_manual(tmp_path: Path) -> None:
    path = recording_path(tmp_path, "1001", WHEN, "wav")
    assert path == tmp_path / "20110131" / "1001" / "1001-17-03-14.wav"


@pytest.mark.parametrize("device", ["../../etc/passwd", "..", ".", "/", "a/../../b", "\x00x",
                                    "C:\\Windows", ".hidden", "x" * 300])
def test_no_device_id_leaves_the_recordings_directory(tmp_path: Path, device: str) -> None:
    path = recording_path(tmp_path, device, WHEN, "wav")
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.parent.parent.parent == tmp_path
    assert not safe_component(device).startswith(".")


def test_same_second_gets_a_new_name_instead_of_sharing_a_file(tmp_path: Path) -> None:
    wanted = recording_path(tmp_path, "1001", WHEN, "wav")
    names = []
    for _ in range(3):
        path, file = create_unique(wanted)
        file.close()
        names.append(path.name)
    assert names == ["1001-17-03-14.wav", "1001-17-03-14_2.wav", "1001-17-03-14_3.wav"]
