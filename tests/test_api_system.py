"""SYSTEMSTATUS, FETCHTERMINOLOGY and AGENTWINDOW over real sockets, and the /proc parsers."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.api.protocol.datetimes import parse_user_datetime, user_datetime, window_datetime
from recorder.config.loader import config_from_dict, load_config
from recorder.config.printing import to_toml
from recorder.errors import ConfigError
from recorder.telemetry import hostinfo
from tests.helpers.api import expect, fields
from tests.helpers.recorders import Running, base_config, stored_rows

MANUAL_TERMINOLOGY = [
    ("agent", "Agent"), ("ani", "CallerID ANI"), ("callcopygroup", "CallCopy group"),
    ("devicealias", "Agent Number"), ("deviceid", "Voice Port"), ("dnis", "Number Called DNIS"),
    ("gate", "ACD Gate"), ("group", "Group"), ("user1", "Account Number"), ("user2", "CSN"),
]


def test_systemstatus_reports_the_real_figures(running: Running) -> None:
    result = expect(running.request("SYSTEMSTATUS", 255), 20, "API_OK")
    tags = [e.tag for e in result][5:]
    cpus = os.cpu_count() or 1
    assert tags == [
        "RECORDINGPATH", "RECORDINGSPEACEINFO", "RECORDINGSPACEINFO",
        "RECORDINGTOTALDISKCAPACITY", "RECORDINGTOTALDISKFREE", "RECORDINGTOTALDISKFREEPCT",
        "SYSTEMUPTIME", *(f"PROCESSOR{i}" for i in range(cpus)), "SYSTEMRAMTOTAL",
        "SYSTEMRAMFREE", "SYSTEMRAMUSED", "SYSTEMRAMUSEDPCT"]
    status = fields(result)
    recordings = running.data_dir / "recordings"
    assert status["RECORDINGPATH"] == str(recordings)
    st = os.statvfs(recordings)
    capacity_mb = st.f_blocks * st.f_frsize // (1 << 20)
    assert int(status["RECORDINGTOTALDISKCAPACITY"]) == capacity_mb
    free_mb = int(status["RECORDINGTOTALDISKFREE"])
    assert abs(free_mb - st.f_bavail * st.f_frsize // (1 << 20)) < 512  # others write too
    assert re.fullmatch(r"\d+\.\d\d", status["RECORDINGTOTALDISKFREEPCT"])
    assert abs(float(status["RECORDINGTOTALDISKFREEPCT"]) - free_mb * 100 / capacity_mb) < 1
    info = re.fullmatch(r"(\d+\.\d\d)GB of (\d+\.\d\d)GB", status["RECORDINGSPEACEINFO"])
    assert info is not None
    assert status["RECORDINGSPACEINFO"] == status["RECORDINGSPEACEINFO"]
    assert abs(float(info[2]) - capacity_mb / 1024) < 0.01
    uptime = re.fullmatch(r"(\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds\.",
                          status["SYSTEMUPTIME"])
    assert uptime is not None
    days, hours, minutes, seconds = map(int, uptime.groups())
    booted = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(days * 86400 + hours * 3600 + minutes * 60 + seconds - booted) < 30
    assert hours < 24
    assert minutes < 60
    assert seconds < 60
    for i in range(cpus):
        cpu = fields(result.find(f"PROCESSOR{i}"))
        assert set(cpu) == {"SYSTEMPROCESSORSPEED", "SYSTEMPROCESSORTYPE"}
        assert re.fullmatch(r"(\d+MHz)?", cpu["SYSTEMPROCESSORSPEED"])
        assert cpu["SYSTEMPROCESSORTYPE"]
    meminfo = dict(re.findall(r"^(\w+):\s+(\d+)", Path("/proc/meminfo").read_text(), re.M))
    total, free, used = (int(status[k]) for k in ("SYSTEMRAMTOTAL", "SYSTEMRAMFREE",
                                                  "SYSTEMRAMUSED"))
    assert total == int(meminfo["MemTotal"]) // 1024
    assert total == free + used
    assert 0 < free <= total
    assert int(status["SYSTEMRAMUSEDPCT"]) == used * 100 // total


def test_uptime_processors_and_memory_parsers() -> None:
    assert hostinfo.format_uptime(66277.9) == "0 days, 18 hours, 24 minutes, 37 seconds."
    assert hostinfo.format_uptime(2 * 86400 + 61) == "2 days, 0 hours, 1 minutes, 1 seconds."
    x86 = ("processor\t: 0\ncpu family\t: 6\nmodel\t\t: 15\nmodel name\t: Intel Core 2\n"
           "stepping\t: 11\ncpu MHz\t\t: 2394.000\n\n"
           "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 15\nstepping\t: 11\ncpu MHz\t\t: 1596.1\n")
    assert hostinfo.processors(x86, 2) == [
        hostinfo.Processor(2394.0, "x86 Family 6 Model 15 Stepping 11"),
        hostinfo.Processor(1596.1, "x86 Family 6 Model 15 Stepping 11")]
    arm = "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\nBogoMIPS\t: 108.00\n\n" \
          "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4\n"
    cpus = hostinfo.processors(arm, 2, sys_cpu=Path("/nonexistent"))
    assert [(c.speed_mhz, c.type) for c in cpus] == [(None, "BCM2835"), (None, "BCM2835")]
    memory = hostinfo.parse_meminfo("MemTotal: 3404800 kB\nMemFree: 100 kB\n"
                                    "MemAvailable: 1742848 kB\n")
    assert memory == hostinfo.Memory(total_kib=3404800, free_kib=1742848)
    assert hostinfo.parse_meminfo("nothing here") is None


def test_the_manuals_time_forms() -> None:
    stamp = parse_user_datetime("ADD_TIME", "10/30/2006 4:05:38 PM -05:00")
    assert stamp == 1162242338.0
    assert parse_user_datetime("ADD_TIME", user_datetime(stamp)) == stamp
    assert parse_user_datetime("X", "2006-10-30T21:05:38+00:00") == stamp
    assert parse_user_datetime("X", "1162242338") == stamp
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d{4} [ \d]\d:\d\d[AP]M", window_datetime(stamp))
    local = time.localtime(stamp)
    assert window_datetime(stamp) == time.strftime("%b %e %Y ", local) + \
        f"{local.tm_hour % 12 or 12:>2}:{local.tm_min:02}{'AM' if local.tm_hour < 12 else 'PM'}"


def test_fetchterminology_answers_the_manuals_defaults(shared_running: Running) -> None:
    result = expect(shared_running.request("FETCHTERMINOLOGY", 34), 20)
    assert result.findtext("COUNT") == "10"
    pairs = [(t.findtext("NAME"), t.findtext("VALUE"))
             for t in result.findall("SETTINGS/TERMINOLOGY")]
    assert pairs == MANUAL_TERMINOLOGY


def test_terminology_is_overridable_in_the_config(start_recorder: Any) -> None:
    running = start_recorder(terminology={"user1": "Policy & <No.>", "USER10": "Région",
                                          "user3": "Case"})
    result = expect(running.request("FETCHTERMINOLOGY", 1), 20)
    pairs = dict((t.findtext("NAME"), t.findtext("VALUE"))
                 for t in result.findall("SETTINGS/TERMINOLOGY"))
    assert pairs == {**dict(MANUAL_TERMINOLOGY), "user1": "Policy & <No.>", "user3": "Case",
                     "user10": "Région"}
    names = [t.findtext("NAME") for t in result.findall("SETTINGS/TERMINOLOGY")]
    assert names[-4:] == ["user1", "user2", "user3", "user10"]  # natural order
    assert result.findtext("COUNT") == "12"


def test_terminology_config_is_checked_and_prints_back(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(base_config(tmp_path, terminology={"user1": 5, "": "x",
                                                            "user2": "v" * 256}))
    assert sorted(err.value.problems) == [
        "terminology.: a name must not be blank",
        "terminology.user1: expected a string, got an integer 5",
        "terminology.user2: names and values are at most 255 characters"]
    config = config_from_dict(base_config(tmp_path, terminology={"gate": 'Skill "set"'}))
    printed = tmp_path / "printed.toml"
    printed.write_text(to_toml(config))
    assert load_config(printed) == config
    assert config.terminology["gate"] == 'Skill "set"'


def test_agentwindow_reports_and_answers_the_latest(running: Running) -> None:
    conn = running.connect()
    expect(conn.request("AGENTWINDOW", 7, computername="ceddy", username="ceddy"), 24,
           "no window reported for COMPUTERNAME ceddy or USERNAME ceddy")
    report = {"action": "UPDATE", "computername": "CEDDY-PC", "username": "ceddy",
              "domain": "uptivity.com", "ipaddress": "10.100.5.91", "status": "AVAILABLE",
              "applicationtitle": "Internet Explorer"}
    expect(conn.request("AGENTWINDOW", 8, **report), 20)
    answer = fields(expect(conn.request("AGENTWINDOW", 9, computername="ceddy",
                                        username="ceddy"), 20, "API_OK"))
    assert {k: answer[k] for k in ("DOMAIN", "IPADDRESS", "STATUS", "APPLICATIONTITLE")} == {
        "DOMAIN": "uptivity.com", "IPADDRESS": "10.100.5.91", "STATUS": "AVAILABLE",
        "APPLICATIONTITLE": "Internet Explorer"}
    assert answer["LASTUPDATE"] in {window_datetime(time.time() - d) for d in (0, 60)}
    # The same user moves on; a title with every awkward character, over the WebAPI.
    title = "Inbox — \"Zoë\" <draft> & more"
    web = running.web_result(type="agentwindow", requestid=10, action="update",
                             computername="ceddy-pc", username="CEDDY", status="BUSY",
                             applicationtitle=title)
    expect(web, 20)
    for query in ({"computername": "Ceddy-PC"}, {"username": "ceddy"}):
        latest = fields(expect(conn.request("AGENTWINDOW", 11, **query), 20))
        assert (latest["STATUS"], latest["APPLICATIONTITLE"], latest["DOMAIN"]) == (
            "BUSY", title, "")


@pytest.mark.parametrize(("params", "code", "starts"), [
    ({}, 26, "COMPUTERNAME or USERNAME is required"),
    ({"computername": "", "username": ""}, 26, "COMPUTERNAME or USERNAME is required"),
    ({"action": "update"}, 26, "COMPUTERNAME or USERNAME is required"),
    ({"action": "wipe", "computername": "PC"}, 21, "ACTION must be GET or UPDATE"),
    ({"computername": "x" * 256}, 16, "COMPUTERNAME is 256"),
    ({"action": "update", "computername": "PC", "applicationtitle": "t" * 256}, 16,
     "APPLICATIONTITLE is 256"),
    ({"username": "nobody"}, 24, "no window reported for USERNAME nobody"),
])
def test_agentwindow_refusals(shared_running: Running, params: dict[str, str], code: int,
                              starts: str) -> None:
    before = stored_rows(shared_running)
    expect(shared_running.request("AGENTWINDOW", 1, **params), code, starts=starts)
    assert stored_rows(shared_running) == before
    expect(shared_running.request("AGENTWINDOW", 2, computername="PC"), 24)  # none reported
