"""A siprec board's settings (issue 22's keys and defaults, each mistake named by its key), the
RTP port allocator, and the session-timer rules (RFC 4028 §9, §10) as tables."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Any

import pytest

from recorder.config.loader import config_from_dict
from recorder.drivers import registry
from recorder.drivers.siprec.config import SiprecBoardConfig, ephemeral_overlap, ephemeral_range
from recorder.drivers.siprec.driver import SiprecDriver
from recorder.drivers.siprec.ports import PortAllocator, PortsExhausted
from recorder.drivers.siprec.sessiontimer import (
    SessionTimerError,
    TimerAnswer,
    expiry_delay,
    negotiate,
)
from recorder.drivers.siprec.sipheaders import Headers
from recorder.errors import ConfigError
from tests.helpers.recorders import BIN, base_config, write_toml

ISSUE_DEFAULTS = {
    "sip_host": "127.0.0.1", "sip_port": 5060, "rtp_host": "", "rtp_port_min": 20000,
    "rtp_port_max": 29999, "devices": (), "allow": ("127.0.0.1/32",), "max_sessions": 500,
    "media_timeout_seconds": 30, "sample_rate": 8000, "tls_port": 0, "tls_cert": "",
    "tls_key": "",
}


def test_the_defaults_are_the_issues() -> None:
    board = SiprecBoardConfig()
    assert {key: getattr(board, key) for key in ISSUE_DEFAULTS} == ISSUE_DEFAULTS
    problems: list[str] = []
    board.checked("boards[0]", problems)
    assert problems == []
    assert (board.rtp_address, board.advertised_host) == ("127.0.0.1", "127.0.0.1")


@pytest.fixture
def registered() -> None:
    assert registry.board_schema("siprec") is SiprecBoardConfig


def load(tmp_path: Path, **keys: Any) -> SiprecBoardConfig:
    board = {"driver": "siprec", "devices": ["1001"], **keys}
    config = config_from_dict(base_config(tmp_path, boards=[board]), base_dir=tmp_path)
    loaded = config.boards[0]
    assert isinstance(loaded, SiprecBoardConfig)
    return loaded


@pytest.mark.usefixtures("registered")
def test_a_board_loads_from_toml_values(tmp_path: Path) -> None:
    board = load(tmp_path, sip_host="0.0.0.0", sip_port=5070, rtp_host="192.0.2.5",
                 rtp_port_min=30000, rtp_port_max=30999, allow=["10.1.0.0/16", "192.0.2.7"],
                 max_sessions=20, media_timeout_seconds=12, sample_rate=16000,
                 playout_delay_seconds=0.5)
    assert board.allow == ("10.1.0.0/16", "192.0.2.7")
    # The jitter buffer's depth reaches the media engine, in samples of the stored rate.
    assert SiprecDriver("boards[0]", board).media.delay == 8000
    assert board.media_timeout_seconds == 12.0
    assert [str(n) for n in board.networks()] == ["10.1.0.0/16", "192.0.2.7/32"]
    assert board.advertised_host == "192.0.2.5"  # a wildcard sip_host is not an address


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(("keys", "problem"), [
    ({"rtp_port_min": 20001}, "boards[0].rtp_port_min: 20001 is odd"),
    ({"rtp_port_min": 30000, "rtp_port_max": 29999},
     "boards[0].rtp_port_max: 29999 is not above rtp_port_min (30000)"),
    ({"rtp_port_min": 30000, "rtp_port_max": 30001}, None),
    ({"sip_port": 20500}, "boards[0].sip_port: 20500 is inside the RTP range 20000-29999"),
    ({"tls_port": 5061}, "boards[0].tls_cert: required with tls_port (5061)"),
    ({"tls_port": 5061}, "boards[0].tls_key: required with tls_port (5061)"),
    ({"tls_port": 5060, "tls_cert": "c.pem", "tls_key": "k.pem"},
     "boards[0].tls_port: 5060 is also sip_port"),
    ({"tls_cert": "c.pem"}, "boards[0].tls_cert: set, but tls_port is 0"),
    ({"allow": ["10.0.0.0/33"]}, "boards[0].allow[0]: '10.0.0.0/33' is not a network"),
    ({"allow": ["ok", "10.0.0.1/24"]},
     "boards[0].allow[1]: '10.0.0.1/24' has host bits set; did you mean 10.0.0.0/24?"),
    ({"allow": []}, "boards[0].allow: empty"),
    ({"sip_host": "recorder.example.com"},
     "boards[0].sip_host: 'recorder.example.com' is not an IP address"),
    ({"sip_host": "0.0.0.0"}, "boards[0].rtp_host: required when sip_host is 0.0.0.0"),
    ({"rtp_host": "0.0.0.0"}, "boards[0].rtp_host: 0.0.0.0 cannot be offered"),
    ({"max_sessions": 0}, "boards[0].max_sessions: 0 is out of range"),
    ({"sample_rate": 4000}, "boards[0].sample_rate: 4000 is out of range"),
    ({"playout_delay_seconds": 10}, "boards[0].playout_delay_seconds: 10.0 is out of range"),
    ({"allow": "10.0.0.0/8"}, "boards[0].allow: expected an array"),
    ({"rtp_port": 20000}, "boards[0].rtp_port: unknown key (did you mean 'rtp_port_min'?)"),
])
def test_mistakes_are_named_by_their_key(tmp_path: Path, keys: dict[str, Any],
                                         problem: str | None) -> None:
    if problem is None:
        load(tmp_path, **keys)  # one RTP/RTCP pair is enough
        return
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, **keys)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_devices_are_a_filter_not_channels(tmp_path: Path) -> None:
    board = load(tmp_path, devices=[], max_sessions=3)
    assert (board.devices, board.channels) == ((), 6)
    assert load(tmp_path, devices=["1001", "1002", "1003"]).channels == 1000


@pytest.mark.parametrize(("boards", "problem"), [
    ([{"driver": "siprec", "devices": ["1001", "1001"]}],
     "boards[0].devices[1]: device 1001 is listed twice"),
    ([{"driver": "siprec", "devices": [" 1001"]}],
     "boards[0].devices[0]: ' 1001' is not a DEVICEID"),
    ([{"driver": "synthetic", "devices": ["1001"]}, {"driver": "siprec", "devices": ["1001"]}],
     "boards[1].devices[0]: device 1001 is already tapped by boards[0] channel 1"),
    ([{"driver": "siprec", "devices": ["1001"]}, {"driver": "synthetic", "devices": ["1001"]}],
     "boards[1].devices[0]: device 1001 is recorded by the calls of boards[0]"),
    ([{"driver": "siprec", "devices": ["1001"]},
      {"driver": "siprec", "devices": ["1001"], "sip_port": 5070}],
     "boards[1].devices[0]: device 1001 is already recorded by boards[0]"),
    ([{"driver": "siprec", "trigger": "vox"}], "boards[0].trigger: a siprec board's calls"),
])
def test_a_device_is_recorded_by_one_board(tmp_path: Path, boards: list[dict[str, Any]],
                                           problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict(base_config(tmp_path, boards=boards), base_dir=tmp_path)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_ports_are_even_with_rtcp_above_and_reused_least_recently() -> None:
    ports = PortAllocator(20001, 20008)  # pairs 20002/3, 20004/5, 20006/7
    assert ports.capacity == 3
    taken = [ports.allocate() for _ in range(3)]
    assert taken == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted) as exhausted:
        ports.allocate()
    assert exhausted.value.status == 503
    ports.release(20004)
    ports.release(20002)
    ports.release(30000)  # not ours: nothing happens
    assert [ports.allocate(), ports.allocate()] == [20004, 20002]
    assert ports.in_use == 3


def test_a_pair_another_program_holds_is_skipped_and_tried_again_later() -> None:
    held = {20004}

    def probe(port: int) -> None:
        if port in held:
            raise OSError(errno.EADDRINUSE, "Address already in use")

    ports = PortAllocator(20002, 20007, probe=probe)  # pairs 20002, 20004, 20006
    assert [ports.allocate(), ports.allocate()] == [20002, 20006]
    with pytest.raises(PortsExhausted) as exhausted:
        ports.allocate()  # the one pair left is held elsewhere
    assert exhausted.value.status == 503
    assert ports.skipped == 2
    held.clear()
    assert ports.allocate() == 20004  # let go by the other program: ours again


def test_a_port_that_cannot_be_bound_for_another_reason_is_503_at_once() -> None:
    def probe(port: int) -> None:
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    with pytest.raises(PortsExhausted, match="cannot be bound"):
        PortAllocator(20002, 20007, probe=probe).allocate()


def headers(*items: tuple[str, str]) -> Headers:
    return Headers(list(items))


@pytest.mark.parametrize(("request_headers", "answer"), [
    ((), TimerAnswer()),
    ((("Supported", "timer"),), TimerAnswer()),  # supported but not asked for: none
    ((("Session-Expires", "1800"),), TimerAnswer()),  # the SRC does not know timers
    ((("Supported", "timer"), ("Session-Expires", "1800")), TimerAnswer(1800, "uac")),
    ((("Supported", "timer"), ("x", "1800;refresher=uas")), TimerAnswer(1800, "uas")),
    ((("Require", "timer"), ("Session-Expires", "600;refresher=uac")),
     TimerAnswer(600, "uac")),
    ((("Supported", "timer"), ("Session-Expires", "60"), ("Min-SE", "60")),
     TimerAnswer(too_small=90)),
])
def test_session_timer_negotiation(request_headers: tuple[tuple[str, str], ...],
                                   answer: TimerAnswer) -> None:
    assert negotiate(headers(*request_headers)) == answer


def test_session_timer_answers_and_deadlines() -> None:
    assert TimerAnswer(1800, "uac").headers == [("Session-Expires", "1800;refresher=uac"),
                                               ("Require", "timer")]
    assert TimerAnswer(1800, "uas").headers == [("Session-Expires", "1800;refresher=uas")]
    assert TimerAnswer(too_small=90).headers == [("Min-SE", "90")]
    # §10: the side that waits gives up min(32 s, a third) before the end.
    assert expiry_delay(1800, "uac") == 1768
    assert expiry_delay(90, "uac") == 60
    assert expiry_delay(90, "uas") == 90
    for bad in ("soon", "90;refresher=both"):
        with pytest.raises(SessionTimerError):
            negotiate(headers(("Supported", "timer"), ("Session-Expires", bad)))


@pytest.mark.parametrize(("low", "high", "ephemeral", "warned"), [
    (20000, 29999, (32768, 60999), False),  # Linux's default: below it
    (30000, 32767, (32768, 60999), False),  # up to its first port
    (30000, 32768, (32768, 60999), True),  # one port in
    (40000, 40999, (32768, 60999), True),  # inside
    (60999, 61999, (32768, 60999), True),  # its last port
    (61000, 62999, (32768, 60999), False),  # above it
    (20000, 29999, (1024, 65535), True),  # a host that gave every port to clients
    (40000, 40999, None, False),  # unknown (no /proc): nothing said
])
def test_an_rtp_range_in_the_ephemeral_ports_is_warned_about(
        low: int, high: int, ephemeral: tuple[int, int] | None, warned: bool) -> None:
    warning = ephemeral_overlap("boards[2]", low, high, ephemeral)
    assert (warning is not None) is warned
    if warning is not None:
        assert warning.startswith("boards[2].rtp_port_min..rtp_port_max: ")
        assert f"{low}-{high}" in warning
        assert ephemeral is not None
        assert f"{ephemeral[0]}-{ephemeral[1]}" in warning
        assert "client sockets of other programs may hold ports of the range" in warning


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("32768\t60999\n")
    assert ephemeral_range(tmp_path / "range") == (32768, 60999)
    (tmp_path / "bad").write_text("nonsense\n")
    assert ephemeral_range(tmp_path / "bad") is None
    assert ephemeral_range(tmp_path / "missing") is None


@pytest.mark.skipif(ephemeral_range() is None, reason="no /proc ip_local_port_range here")
@pytest.mark.slow
def test_check_config_warns_of_an_rtp_range_in_the_ephemeral_ports(tmp_path: Path) -> None:
    ephemeral = ephemeral_range()
    assert ephemeral is not None
    low = ephemeral[0] + ephemeral[0] % 2
    path = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path}/d"
[[boards]]
driver = "siprec"
sip_port = 0
rtp_port_min = {low}
rtp_port_max = {low + 99}
[[boards]]
driver = "siprec"
sip_port = 0
rtp_port_min = 2000
rtp_port_max = 2099
""")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stdout
    # Only the RTP ranges: the API's default ports may be busy with another test's recorderd.
    warnings = [line.strip() for line in done.stdout.splitlines()
                if "warning:" in line and "rtp_port" in line]
    assert len(warnings) == 1, done.stdout  # the second board's range is clear of them
    assert warnings[0].startswith("warning: boards[0].rtp_port_min..rtp_port_max: "
                                  f"{low}-{low + 99} overlaps the kernel's ephemeral ports "
                                  f"{ephemeral[0]}-{ephemeral[1]}")
