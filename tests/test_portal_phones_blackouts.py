"""The portal's phones page (ALLOWAGENTADMIN: IMPORTAGENTPHONE's data), blackouts page
(ALLOWBLACKOUT: BLACKOUTSTART/STOP on a call in progress, AGENTBLACKOUTSTART/STOP for an agent,
with TIMEOFFSET) and stations page (IMPORTWORKSTATION's data), over HTTP against a real
in-process recorder: what an administrator changes there takes effect in the recordings made
after."""

from __future__ import annotations

import re
import time
import wave

import pytest

from recorder.app import Recorder
from recorder.store.audit import AuditQuery
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    PortalClient,
    add_user,
    api_fixture,
    call_in_progress,
    portal_fixture,
    portal_port,
    signed_in,
)

portal = portal_fixture()
api = api_fixture()



def actions(portal: Recorder, action: str) -> list[tuple[str, str, str]]:
    assert portal.store is not None
    assert portal.store.audit is not None
    return [(e.username, e.target, e.detail)
            for e in portal.store.audit.list_audit(AuditQuery(action=action))]


def test_a_phone_given_in_the_portal_makes_the_next_call_on_it_the_agents(
        portal: Recorder, api: ApiConnection) -> None:
    admin = signed_in(portal, "pat", ("ALLOWAGENTADMIN",))
    ann_id = add_user(portal, "ann", ("VIEWOWNRECORDS",))
    other_id = add_user(portal, "otto", ("VIEWOWNRECORDS",))
    ann = PortalClient(portal_port(portal))
    assert ann.sign_in("ann").status == 303
    # A call on 1002 before it is anyone's phone: not ann's.
    api.request("CALLSTART", 1, DEVICEID="1002", ANI="before")
    before = call_in_progress(portal, "1002")
    api.request("CALLSTOP", 2, DEVICEID="1002")
    assert ann.get(f"/recordings/{before}").status == 404
    token = admin.csrf("/admin/phones")
    given = admin.post("/admin/phones", {"csrf": token, "action": "assign",
                                         "user_id": str(ann_id), "phone": "1002"})
    assert given.status == 303
    row = admin.get("/admin/phones").text.split(f'data-user="{ann_id}"', 1)[1].split("</tr>")[0]
    assert '<span class="phone">1002</span>' in row
    # One agent at a time: otto cannot have it while ann does.
    taken = admin.post("/admin/phones", {"csrf": token, "action": "assign",
                                         "user_id": str(other_id), "phone": "1002"})
    assert taken.status == 409
    assert f"phone 1002 is assigned to agent {ann_id}" in taken.text
    # What a caller typed is shown as text.
    assert admin.post("/admin/phones", {"csrf": token, "action": "assign",
                                        "user_id": str(other_id),
                                        "phone": "<b>x</b>"}).status == 303
    page = admin.get("/admin/phones").text
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page

    api.request("CALLSTART", 1, DEVICEID="1002", ANI="ann-call")
    ident = call_in_progress(portal, "1002")
    api.request("CALLSTOP", 2, DEVICEID="1002")
    assert portal.store is not None
    recorded = portal.store.recordings.get_recording(ident)
    assert recorded is not None
    assert recorded.agent_id == ann_id
    assert ann.get(f"/recordings/{ident}").status == 200  # her own call now
    assert "ann-call" in ann.get("/recordings").text

    assert admin.post("/admin/phones", {"csrf": token, "action": "unassign",
                                        "user_id": str(ann_id), "phone": "1002"}).status == 303
    row = admin.get("/admin/phones").text.split(f'data-user="{ann_id}"', 1)[1].split("</tr>")[0]
    assert "1002" not in row
    # Given to otto now: the next call on it is his, no longer ann's: its row, and the AGENTID
    # its events carry (the scheduler was told: its agent lookup is kept between changes).
    assert admin.post("/admin/phones", {"csrf": token, "action": "assign",
                                        "user_id": str(other_id), "phone": "1002"}).status == 303
    assert portal.events is not None
    watch = portal.events.subscribe(["RECORD"], ["1002"])
    try:
        api.request("CALLSTART", 3, DEVICEID="1002", ANI="otto-call")
        after = call_in_progress(portal, "1002")
        api.request("CALLSTOP", 4, DEVICEID="1002")
        seen = []
        while (event := watch.get_nowait()) is not None:
            seen.append(event)
    finally:
        watch.close()
    started = [e for e in seen if e.event_type == "RECORDINGSTARTED"]
    assert started
    assert {e.get("AGENTID") for e in started} == {str(other_id)}
    later = portal.store.recordings.get_recording(after)
    assert later is not None
    assert later.agent_id == other_id
    assert ann.get(f"/recordings/{after}").status == 404
    assert ("pat", "ann", "phone 1002 assigned") in actions(portal, "user")
    assert ("pat", "ann", "phone 1002 taken away") in actions(portal, "user")
    # A form that names no action changes nothing.
    assert admin.post("/admin/phones", {"csrf": token, "user_id": str(ann_id),
                                        "phone": "1003"}).status == 400


@pytest.mark.slow  # a live call with a blackout of real seconds
def test_a_blackout_started_and_stopped_in_the_portal_is_silence_kept_with_the_recording(
        portal: Recorder, api: ApiConnection) -> None:
    client = signed_in(portal, "bo", ("ALLOWBLACKOUT",))
    token = client.csrf("/admin/blackouts")
    assert "No call is being recorded" in client.get("/admin/blackouts").text
    api.request("CALLSTART", 1, DEVICEID="1003")
    try:
        ident = call_in_progress(portal, "1003")
        page = client.get("/admin/blackouts").text
        assert 'aria-label="Start a blackout on 1003"' in page
        time.sleep(0.5)
        began = time.monotonic()
        started = client.post("/admin/blackouts", {"csrf": token, "action": "start",
                                                   "device": "1003"})
        assert started.status == 303
        page = client.get("/admin/blackouts").text
        assert 'aria-label="Stop the blackout on 1003"' in page
        again = client.post("/admin/blackouts", {"csrf": token, "action": "start",
                                                 "device": "1003"})
        assert again.status == 409
        assert "already" in again.text
        time.sleep(1.0)
        assert client.post("/admin/blackouts", {"csrf": token, "action": "stop",
                                                "device": "1003"}).status == 303
        outer = time.monotonic() - began
        time.sleep(0.3)
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1003")
    assert portal.store is not None
    (mark,) = portal.store.recordings.recording_blackouts(ident)
    # At least the second between the answers, at most the time from the first request to
    # the last answer (a busy machine stretches both).
    assert 0.9 < mark[1] - mark[0] < outer + 0.2, (mark, outer)
    idle = client.post("/admin/blackouts", {"csrf": token, "action": "stop",
                                            "device": "1003"})
    assert idle.status == 409
    assert re.search(r"not in (a )?call", idle.text)
    assert [d for u, t, d in actions(portal, "blackout") if u == "bo"] == [
        "stopped", "started"]  # newest first; the refusals are not in the trail


def _silent(path: str, start: float, end: float) -> bool:
    with wave.open(path, "rb") as wav:
        rate = wav.getframerate()
        wav.setpos(round(start * rate))
        frames = wav.readframes(round((end - start) * rate))
    return not any(frames)


@pytest.mark.slow
def test_a_blackout_reaching_back_silences_what_was_already_recorded(
        portal: Recorder, api: ApiConnection) -> None:
    client = signed_in(portal, "reach", ("ALLOWBLACKOUT",))
    token = client.csrf("/admin/blackouts")
    assert portal.events is not None
    watch = portal.events.subscribe(["RECORD"], ["1004"])
    api.request("CALLSTART", 1, DEVICEID="1004")
    try:
        ident = call_in_progress(portal, "1004")
        time.sleep(3.0)
        bad = client.post("/admin/blackouts", {"csrf": token, "action": "start",
                                               "device": "1004", "offset": "-99999"})
        assert bad.status == 400
        assert "whole seconds" in bad.text
        began = time.monotonic()
        assert client.post("/admin/blackouts", {"csrf": token, "action": "start",
                                                "device": "1004", "offset": "-2"}).status == 303
        time.sleep(1.0)
        assert client.post("/admin/blackouts", {"csrf": token, "action": "stop",
                                                "device": "1004", "offset": "0"}).status == 303
        outer = time.monotonic() - began
        time.sleep(0.5)
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1004")
        time.sleep(0.3)
        seen = []
        while (event := watch.get_nowait()) is not None:
            seen.append(event.event_type)
        watch.close()
    assert portal.store is not None
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    (mark,) = portal.store.recordings.recording_blackouts(ident)
    # Two seconds before the request, to the stop: what was already in the file is silence.
    assert 1.0 + 2.0 - 0.1 < mark[1] - mark[0] < outer + 2.0 + 0.2, (mark, outer)
    assert mark[0] > 0.5
    assert _silent(row.filename, mark[0], mark[1])
    assert seen.index("RECORDINGPAUSED") < seen.index("RECORDINGRESUMED")
    assert [d for u, _, d in actions(portal, "blackout") if u == "reach"] == [
        "stopped", "started (TIMEOFFSET -2 s)"]


@pytest.mark.slow
def test_an_agent_blackout_silences_the_calls_that_start_while_it_runs(
        portal: Recorder, api: ApiConnection) -> None:
    assert portal.store is not None
    client = signed_in(portal, "boss", ("ALLOWBLACKOUT",))
    agent = add_user(portal, "<i>agatha</i>", ("VIEWOWNRECORDS",))
    add_user(portal, "nophone", ("VIEWOWNRECORDS",))
    portal.store.directory.assign_phone(agent, "1004", now=time.time())
    portal._directory_changed()
    token = client.csrf("/admin/blackouts")
    page = client.get("/admin/blackouts").text
    assert 'aria-label="Start an agent blackout for &lt;i&gt;agatha&lt;/i&gt;"' in page
    assert "<i>agatha</i>" not in page
    assert "Start an agent blackout for nophone" not in page  # nothing to black out
    started = client.post("/admin/blackouts", {"csrf": token, "action": "agent-start",
                                               "user_id": str(agent)})
    assert started.status == 303
    assert 'aria-label="Stop the agent blackout of &lt;i&gt;agatha&lt;/i&gt;"' in \
        client.get("/admin/blackouts").text
    began = time.monotonic()
    api.request("CALLSTART", 1, DEVICEID="1004")
    try:
        ident = call_in_progress(portal, "1004")
        time.sleep(0.2)
        # The call is blacked out from its start, and shown so.
        assert 'aria-label="Stop the blackout on 1004"' in client.get("/admin/blackouts").text
        time.sleep(1.0)
        assert client.post("/admin/blackouts", {"csrf": token, "action": "agent-stop",
                                                "user_id": str(agent)}).status == 303
        outer = time.monotonic() - began
        again = client.post("/admin/blackouts", {"csrf": token, "action": "agent-stop",
                                                 "user_id": str(agent)})
        assert again.status == 409
        assert "no agent blackout is running" in again.text
        time.sleep(0.5)
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1004")
        portal.store.directory.unassign_phone(agent, "1004")
        portal._directory_changed()
    (mark,) = portal.store.recordings.recording_blackouts(ident)
    assert mark[0] < 0.8  # from the call's start (after its half second of pre-roll)
    assert 1.0 < mark[1] - mark[0] < outer + 0.7, (mark, outer)
    without = client.post("/admin/blackouts", {"csrf": token, "action": "agent-start",
                                               "user_id": str(agent)})
    assert without.status == 409
    assert "has no phone to black out" in without.text
    assert client.post("/admin/blackouts", {"csrf": token, "action": "agent-start",
                                            "user_id": "x"}).status == 400
    assert [d for u, _, d in actions(portal, "blackout") if u == "boss"] == [
        "agent blackout stopped on 1004", "agent blackout started on 1004"]


def test_a_station_mapped_in_the_portal_names_its_device_for_the_api(
        portal: Recorder, api: ApiConnection) -> None:
    client = signed_in(portal, "sysop", ("ALLOWSYSTEMCONFIG",))
    token = client.csrf("/admin/stations")
    assert client.post("/admin/stations", {"csrf": token, "action": "map",
                                           "station": "Desk <7>", "device": "1003",
                                           "location": "2"}).status == 303
    page = client.get("/admin/stations").text
    assert "<td>Desk &lt;7&gt;</td><td>1003</td><td>2</td>" in page
    assert "Desk <7>" not in page
    listed = api.request("STATIONS", 1)
    assert [(s.findtext("STATIONNAME"), s.findtext("DEVICEID"))
            for s in listed.iter("STATION")] == [("Desk <7>", "1003")]
    # A call named by its station (any case) is recorded on the station's device.
    api.request("CALLSTART", 2, STATIONNAME="desk <7>", ANI="by-station")
    try:
        ident = call_in_progress(portal, "1003")
    finally:
        api.request("CALLSTOP", 3, STATIONNAME="DESK <7>")
    assert portal.store is not None
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.meta["ANI"] == "by-station"
    # The same device mapped to another station takes it from the first, as IMPORTWORKSTATION.
    assert client.post("/admin/stations", {"csrf": token, "action": "map", "station": "desk-8",
                                           "device": "1003", "location": ""}).status == 303
    assert [s.station_name for s in portal.store.directory.list_stations()] == ["desk-8"]
    for form, status in (({"action": "map", "station": "x" * 51, "device": "1"}, 400),
                         ({"action": "map", "station": "desk-9", "device": "1",
                           "location": "one"}, 400),
                         ({"action": "remove", "station": "nowhere"}, 409),
                         ({"station": "desk-8"}, 400)):
        assert client.post("/admin/stations", {"csrf": token, **form}).status == status
    assert client.post("/admin/stations", {"csrf": token, "action": "remove",
                                           "station": "DESK-8"}).status == 303
    assert portal.store.directory.list_stations() == []
    assert actions(portal, "station") == [
        ("sysop", "desk-8", "removed (was device 1003)"),
        ("sysop", "desk-8", "device 1003, location 0"),
        ("sysop", "Desk <7>", "device 1003, location 2")]
    # The page asks what the API asks IMPORTWORKSTATION for.
    assert signed_in(portal, "agentadmin", ("ALLOWAGENTADMIN",)).get(
        "/admin/stations").status == 403
