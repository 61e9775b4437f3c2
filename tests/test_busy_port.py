"""A port another program holds: recorderd retries its start for ``core.bind_retry_seconds``,
then exits 1 naming the key; ``--check-config`` warns about it, but never about the ports of
the recorderd already running on the same data directory. A data directory that cannot be
created is a configuration that cannot work: exit 78."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from recorder.config.loader import config_from_dict
from recorder.service.portcheck import busy_port_warnings
from tests.helpers.net import free_port
from tests.helpers.recorders import BIN, RecorderProcess, base_config, write_toml

pytestmark = pytest.mark.process


def _config(tmp_path: Path, web_port: int, retry: float, socket_port: int = 0) -> Path:
    return write_toml(tmp_path / "r.toml", f"""
[core]
bind_retry_seconds = {retry}
[storage]
data_dir = "{tmp_path}/d"
[api]
socket_port = {socket_port}
web_port = {web_port}
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")


def _held() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def _wait_for(proc: RecorderProcess, pattern: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, proc.log):
        assert proc.proc.poll() is None, f"recorderd exited {proc.proc.returncode}:\n{proc.log}"
        assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{proc.log}"
        time.sleep(0.05)


def test_a_port_held_throughout_is_retried_then_exit_1_naming_the_key(tmp_path: Path) -> None:
    with _held() as holder:
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run([str(BIN / "recorderd"), "--config",
                               str(_config(tmp_path, port, retry=2))],
                              capture_output=True, text=True, timeout=120, check=False)
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert re.search(rf"cannot start yet: api\.web_port: cannot listen on 127\.0\.0\.1:{port}: "
                     r".*in use; retrying for up to 2 s \(core\.bind_retry_seconds\)",
                     done.stderr), done.stderr
    final = re.search(rf"cannot start: api\.web_port: cannot listen on 127\.0\.0\.1:{port}: "
                      r".*in use \(still, after (\d+) attempts in 2 s\)", done.stderr)
    assert final, done.stderr
    assert int(final.group(1)) >= 2
    assert took >= 2.0  # it did wait, the whole while, before giving up
    assert "Traceback" not in done.stderr


def test_without_retry_a_busy_port_fails_at_once(tmp_path: Path) -> None:
    with _held() as holder:
        port = holder.getsockname()[1]
        done = subprocess.run([str(BIN / "recorderd"), "--config",
                               str(_config(tmp_path, port, retry=0))],
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert re.search(rf"cannot start: api\.web_port: cannot listen on 127\.0\.0\.1:{port}: "
                     r".*in use$", done.stderr, re.MULTILINE), done.stderr
    assert "retrying" not in done.stderr


def test_a_port_freed_during_the_retry_is_taken_and_served(tmp_path: Path) -> None:
    holder = _held()
    port = holder.getsockname()[1]
    proc = RecorderProcess(["--config", str(_config(tmp_path, port, retry=120))])
    try:
        _wait_for(proc, r"cannot start yet: api\.web_port")
        holder.close()
        running = proc.wait_ready()
        assert running.web_port == port
        channels = running.web_result(type="CHANNELS", requestid="7")
        assert channels.findtext("RESULTCODE") == "20"  # API_OK
        assert channels.findtext("COUNT") == "1"
        assert re.search(r"started on attempt \d+: the port is free now", proc.log)
    finally:
        holder.close()
        assert proc.stop() == 0


def test_sigterm_while_waiting_for_the_port_stops_at_once_with_0(tmp_path: Path) -> None:
    with _held() as holder:
        proc = RecorderProcess(["--config", str(_config(tmp_path, holder.getsockname()[1],
                                                        retry=600))])
        _wait_for(proc, r"cannot start yet")
        stopped_at = time.monotonic()
        code = proc.stop(timeout=60)
    assert code == 0, proc.log
    assert time.monotonic() - stopped_at < 30  # not the 600 s of retrying that were left
    assert "stopped while waiting for a busy port" in proc.log
    assert "recorderd ready" not in proc.log


def test_check_config_warns_about_a_busy_port_naming_its_key(tmp_path: Path) -> None:
    with _held() as holder:
        port = holder.getsockname()[1]
        done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config",
                               str(_config(tmp_path, port, retry=30))],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr  # a warning: the port may be free at start
    assert re.search(rf"warning: api\.web_port: 127\.0\.0\.1:{port} \(TCP\) cannot be listened "
                     r"on now: .*in use; recorderd would retry for core\.bind_retry_seconds = "
                     r"30 s, then exit 1", done.stdout), done.stdout
    assert "api.socket_port" not in done.stdout.split("configuration OK")[1].split("warning")[-1]


def test_check_config_is_quiet_about_the_running_recorderds_own_ports(tmp_path: Path) -> None:
    socket_port, web_port = free_port(), free_port()
    path = _config(tmp_path, web_port, retry=0, socket_port=socket_port)
    proc = RecorderProcess(["--config", str(path)])
    try:
        proc.wait_ready()
        done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "configuration OK" in done.stdout
        assert "cannot be listened on" not in done.stdout, done.stdout
        # The same ports under another data directory are somebody else's: warned about.
        other = tmp_path / "other"
        other.mkdir()
        second = _config(other, web_port, retry=0, socket_port=socket_port)
        done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(second)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert f"api.web_port: 127.0.0.1:{web_port} (TCP) cannot be listened on now" in done.stdout
        assert (f"api.socket_port: 127.0.0.1:{socket_port} (TCP) cannot be listened on now"
                in done.stdout)
    finally:
        assert proc.stop() == 0


def test_a_data_dir_that_cannot_be_created_exits_78(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path}/a-file/d"
[api]
socket_port = 0
web_port = 0
""")
    done = subprocess.run([str(BIN / "recorderd"), "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78, done.stderr
    assert f"storage.data_dir: cannot create {tmp_path}/a-file/d" in done.stderr
    check = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert (f"warning: storage.data_dir: {tmp_path}/a-file is not a directory, so "
            f"{tmp_path}/a-file/d cannot be created") in check.stdout, check.stdout


def test_the_siprec_and_portal_ports_are_checked_and_marked_busy(tmp_path: Path) -> None:
    with _held() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        config = config_from_dict(base_config(
            tmp_path, portal={"enabled": True, "port": tcp.getsockname()[1]},
            boards=[{"driver": "siprec", "sip_port": udp.getsockname()[1]}]), base_dir=tmp_path)
        warnings = busy_port_warnings(config)
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    assert [w.split(" cannot")[0] for w in warnings] == [
        f"portal.port: 127.0.0.1:{tcp_port} (TCP)",
        f"boards[0].sip_port: 127.0.0.1:{udp_port} (UDP)"]

