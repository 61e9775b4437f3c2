"""The portal's phones page (ALLOWAGENTADMIN: IMPORTAGENTPHONE's data) and blackouts page
(ALLOWBLACKOUT: BLACKOUTSTART/STOP on a call in progress), over HTTP against a real in-process
recorder: what an administrator changes there takes effect in the recordings made after."""

from __future__ import annotations

import re
import time

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
        time.sleep(0.3)
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1003")
    assert portal.store is not None
    (mark,) = portal.store.recordings.recording_blackouts(ident)
    assert 0.8 < mark[1] - mark[0] < 1.5
    idle = client.post("/admin/blackouts", {"csrf": token, "action": "stop",
                                            "device": "1003"})
    assert idle.status == 409
    assert re.search(r"not in (a )?call", idle.text)
    assert [d for u, t, d in actions(portal, "blackout") if u == "bo"] == [
        "stopped", "started"]  # newest first; the refusals are not in the trail
