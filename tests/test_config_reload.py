"""SIGHUP: which changed keys it applies, and which it names as needing a restart."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.config.reload import changed_keys, needs_restart
from recorder.service.daemon import _reload
from tests.helpers.recorders import base_config, write_toml

BOARD = {"driver": "synthetic", "devices": ["1001", "1002"]}


def config(tmp_path: Path, **sections: Any) -> Any:
    return config_from_dict(base_config(tmp_path, **{"boards": [BOARD], **sections}),
                            base_dir=tmp_path)


@pytest.mark.parametrize(("change", "restart"), [
    ({}, []),
    ({"recording": {"max_concurrent": 1, "default_priority": 7}}, []),
    ({"recording": {"blocked": [{"name": "x", "ani": ["5551234"]}]}}, []),
    ({"terminology": {"agent": "Representative"}}, []),
    ({"api": {"socket_port": 0, "web_port": 0, "workers": 3}}, ["api.workers"]),
    ({"recording": {"max_tracked_devices": 500}}, ["recording.max_tracked_devices"]),
    ({"boards": [{**BOARD, "devices": ["1001", "2002"]}]}, ["boards[0].devices"]),
    ({"boards": [BOARD, {"driver": "synthetic", "devices": ["3001"]}]}, ["boards"]),
    ({"storage": {"data_dir": "elsewhere", "format": "mp3"}},
     ["storage.data_dir", "storage.format"]),
    ({"api": {"socket_port": 0, "web_port": 0}, "recording": {"max_concurrent": 1},
      "retention": {"purge_time": "01:30"}}, ["retention.purge_time"]),
])
def test_only_the_keys_sighup_does_not_apply_are_named(
        tmp_path: Path, change: dict[str, Any], restart: list[str]) -> None:
    before = config(tmp_path)
    after = config(tmp_path, **change)
    assert needs_restart(before, after) == restart
    assert set(restart) <= set(changed_keys(before, after))


def test_sighup_with_a_changed_port_says_it_needs_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    running = config(tmp_path)
    recorder = Recorder(running)
    recorder.start()
    try:
        path = write_toml(tmp_path / "r.toml", to_toml(config(
            tmp_path, api={"socket_port": 0, "web_port": 0, "max_clients": 9},
            terminology={"agent": "Representative"})))
        caplog.set_level(logging.INFO, logger="recorder.service.daemon")
        assert _reload(recorder, path) is None
        said = [r.getMessage() for r in caplog.records]
        assert ("SIGHUP: changed, but only a restart applies them (the running values stay): "
                "api.max_clients") in said
        assert recorder.dispatcher is not None
        assert recorder.dispatcher.context.terminology["agent"] == "Representative"
    finally:
        recorder.stop()
