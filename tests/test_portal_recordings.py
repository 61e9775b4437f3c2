"""The portal's recordings over HTTP against a real in-process recorder: hostile metadata rendered
escaped, search and what groups let one see, Range requests for the player (WAV, and VOX through
a WAV rendition), download as stored or in another format, bookmarks, delete, the audit trail of
it all, and a database failure shown as a page, not a traceback."""

from __future__ import annotations

import http.client
import logging
import sqlite3

import pytest

from recorder.app import Recorder
from recorder.errors import StoreError
from tests.helpers.portal import (
    add_recording,
    add_user,
    audited,
    client_of,
    portal_fixture,
    portal_port,
)

EVERYTHING = ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD", "ALLOWFILEDELETE")

portal = portal_fixture()


HOSTILE = {"ANI": "<script>alert('ani')</script>",
           "USER1": '"><img src=x onerror=alert(1)>',
           "USER15": "{{ 7*7 }}</td><script>alert(15)</script>",
           "DNIS": "javascript:alert(1)", "GROUP": "&amp;<b>bold</b>"}


def test_what_callers_typed_is_rendered_escaped(portal: Recorder) -> None:
    agent = add_user(portal, "<b>eve</b>", EVERYTHING, first="<i>Eve</i>")
    ident, _ = add_recording(portal, agent_id=agent, meta=HOSTILE)
    client = client_of(portal)
    client.sign_in("<b>eve</b>")
    pages = [client.get(f"/recordings?group={HOSTILE['GROUP'].replace('&', '%26')}"),
             client.get(f"/recordings/{ident}"), client.get(f"/recordings/{ident}/delete")]
    for page in pages:
        assert page.status == 200
        assert "<script>" not in page.text
        assert "<img" not in page.text
        assert "<b>" not in page.text
        assert "<i>" not in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    shown = pages[1].text
    assert "&lt;script&gt;alert(&#39;ani&#39;)&lt;/script&gt;" in shown
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "{{ 7*7 }}" in shown  # shown as typed, never evaluated as a template
    assert "&amp;amp;&lt;b&gt;bold&lt;/b&gt;" in shown
    assert f"Open {ident}" in pages[0].text  # the search found it by its hostile GROUP
    assert "&lt;i&gt;Eve&lt;/i&gt;" in pages[0].text


def test_the_player_gets_range_requests_and_playing_sets_listenedto(portal: Recorder) -> None:
    assert portal.store is not None
    add_user(portal, "ray", ("ALLOWVIEWALLRECORDS",))
    ident, path = add_recording(portal, agent_id=None, seconds=2.0)
    data = path.read_bytes()
    client = client_of(portal)
    client.sign_in("ray")
    page = client.get(f"/recordings/{ident}").text
    assert f'<audio controls preload="none" src="/recordings/{ident}/audio"' in page
    seek = client.get(f"/recordings/{ident}/audio", Range="bytes=1000-1999")
    assert seek.status == 206
    assert seek.body == data[1000:2000]
    assert seek.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert seek.headers["Content-Type"] == "audio/wav"
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert not row.listened_to  # a seek is not a new listening
    assert not [e for e in audited(portal, username="ray") if e.action == "play"]
    tail = client.get(f"/recordings/{ident}/audio", Range="bytes=-100")
    assert tail.status == 206
    assert tail.body == data[-100:]
    start = client.get(f"/recordings/{ident}/audio", Range="bytes=0-")
    assert start.status == 206
    assert start.body == data
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.listened_to
    assert [(e.action, e.target) for e in audited(portal, username="ray", limit=1)] == [
        ("play", str(ident))]
    assert "Download" not in page  # ALLOWEXPORTDOWNLOAD is not ray's
    assert "Delete" not in page


def test_download_is_the_stored_file_as_an_attachment(portal: Recorder) -> None:
    add_user(portal, "dot", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, path = add_recording(portal, agent_id=None)
    client = client_of(portal)
    client.sign_in("dot")
    answer = client.get(f"/recordings/{ident}/download")
    assert answer.status == 200
    assert answer.body == path.read_bytes()
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="recording-{ident}-{path.name}"'
    assert audited(portal, username="dot", limit=1)[0].action == "download"


def _lock(portal: Recorder, ident: int) -> None:
    # No request sets LOCKED yet; the test sets it as an integration would.
    conn = sqlite3.connect(portal.config.storage.database_path)
    with conn:
        conn.execute("UPDATE recordings SET locked = 1 WHERE ident = ?", (ident,))
    conn.close()


def test_delete_asks_first_and_refuses_locked_and_held_recordings(portal: Recorder) -> None:
    assert portal.store is not None
    add_user(portal, "del", ("ALLOWVIEWALLRECORDS", "ALLOWFILEDELETE"))
    client = client_of(portal)
    client.sign_in("del")
    locked, locked_path = add_recording(portal, agent_id=None)
    _lock(portal, locked)
    held, held_path = add_recording(portal, agent_id=None, keep_days=30)
    for ident, reason in ((locked, "it is locked"), (held, "its KEEPDAYS (30) holds it")):
        assert reason in client.get(f"/recordings/{ident}/delete").text
        refused = client.post(f"/recordings/{ident}/delete", {"csrf": client.csrf()})
        assert refused.status == 409
        assert reason in refused.text
    assert locked_path.exists()
    assert held_path.exists()
    ident, path = add_recording(portal, agent_id=None)
    confirm = client.get(f"/recordings/{ident}/delete")
    assert "will be deleted for good" in confirm.text
    assert path.exists()  # asking is not deleting
    done = client.post(f"/recordings/{ident}/delete", {"csrf": client.csrf()})
    assert done.status == 303
    assert not path.exists()
    assert portal.store.recordings.get_recording(ident) is None
    assert client.get(f"/recordings/{ident}").status == 404
    entry = audited(portal, username="del", limit=1)[0]
    assert (entry.action, entry.target, entry.detail) == ("delete", str(ident), str(path))


def test_searching_is_audited_with_its_filters(portal: Recorder) -> None:
    add_user(portal, "sue", ("ALLOWVIEWALLRECORDS",))
    add_recording(portal, agent_id=None, meta={"ANI": "6145551212", "USER7": "acct-7"})
    client = client_of(portal)
    client.sign_in("sue")
    found = client.get("/recordings?ani=6145551212&user7=acct-7&order=oldest")
    assert found.status == 200
    assert "6145551212" in found.text
    assert "No recordings match" in client.get("/recordings?ani=0000").text
    bad = client.get("/recordings?from=yesterday")
    assert "from: not a date and time" in bad.text
    assert "agent: no user named nobody-here" in client.get("/recordings?agent=nobody-here").text
    assert "No recordings match" in client.get("/recordings?agent=SUE&ani=6145551212").text
    entries = [e for e in audited(portal, username="sue") if e.action == "search"]
    assert entries[-1].detail == "ani=6145551212&user7=acct-7&order=oldest"


def test_groups_narrow_what_view_all_shows(portal: Recorder) -> None:
    assert portal.store is not None
    directory = portal.store.directory
    boss = add_user(portal, "gil", ("ALLOWVIEWALLRECORDS", "VIEWOWNRECORDS"))
    member = add_user(portal, "gwen", ())
    group, _ = directory.add_group("Sales & <Marketing>")
    directory.set_group_member(group.group_id, member, "2001", True)
    role = directory.find_role(name="role of gil")
    assert role is not None
    directory.set_role_group(role.role_id, group.group_id, True)
    on_device, _ = add_recording(portal, agent_id=None, device="2001", meta={"ANI": "g-dev"})
    by_agent, _ = add_recording(portal, agent_id=member, device="3001", meta={"ANI": "g-agt"})
    own, _ = add_recording(portal, agent_id=boss, device="3002", meta={"ANI": "g-own"})
    outside, _ = add_recording(portal, agent_id=None, device="3003", meta={"ANI": "g-out"})
    client = client_of(portal)
    client.sign_in("gil")
    listing = client.get("/recordings").text
    for ani in ("g-dev", "g-agt", "g-own"):
        assert ani in listing
    assert "g-out" not in listing
    for ident in (on_device, by_agent, own):
        assert client.get(f"/recordings/{ident}").status == 200
    assert client.get(f"/recordings/{outside}").status == 404
    assert client.get(f"/recordings/{outside}/audio").status == 404
    # Taking the group from the role widens the view again at the next request.
    directory.set_role_group(role.role_id, group.group_id, False)
    assert client.get(f"/recordings/{outside}").status == 200


def test_a_kept_alive_connection_plays_and_downloads_in_turn_without_an_error(
        portal: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    add_user(portal, "kay", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, path = add_recording(portal, agent_id=None)
    client = client_of(portal)
    client.sign_in("kay")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    conn = http.client.HTTPConnection("127.0.0.1", portal_port(portal), timeout=10)
    try:
        for target, headers in ((f"/recordings/{ident}/audio", {"Range": "bytes=0-"}),
                                (f"/recordings/{ident}/audio", {"Range": "bytes=10-19"}),
                                (f"/recordings/{ident}/download", {}),
                                (f"/recordings/{ident}", {})):
            conn.request("GET", target, headers={"Cookie": cookie, **headers})
            response = conn.getresponse()
            body = response.read()
            assert response.status in (200, 206), target
            if "Range" in headers and headers["Range"] == "bytes=10-19":
                assert body == path.read_bytes()[10:20]
    finally:
        conn.close()
    assert "Unhandled exception" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_vox_recording_plays_from_a_wav_rendition_with_range(portal: Recorder) -> None:
    add_user(portal, "vic", ("ALLOWVIEWALLRECORDS",))
    ident, path = add_recording(portal, agent_id=None, seconds=2.0, media_format="vox")
    assert path.suffix == ".vox"
    client = client_of(portal)
    client.sign_in("vic")
    assert f'src="/recordings/{ident}/audio"' in client.get(f"/recordings/{ident}").text
    whole = client.get(f"/recordings/{ident}/audio")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.body[:4] == b"RIFF"
    assert len(whole.body) == 44 + 2 * 8000 * 2  # 2 s of 16-bit PCM at 8 kHz
    seek = client.get(f"/recordings/{ident}/audio", Range="bytes=8044-8143")
    assert seek.status == 206
    assert seek.body == whole.body[8044:8144]
    renditions = list((portal.config.storage.data_dir / "tmp" / "portal").glob("play-*"))
    assert [p.name.split("-")[1] for p in renditions].count(str(ident)) == 1


def test_a_download_in_another_format_is_made_for_it_and_removed(portal: Recorder) -> None:
    add_user(portal, "fay", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, _ = add_recording(portal, agent_id=None, seconds=1.0)
    client = client_of(portal)
    client.sign_in("fay")
    assert '<option value="mp3">' in client.get(f"/recordings/{ident}").text
    mp3 = client.get(f"/recordings/{ident}/download?format=mp3")
    assert mp3.status == 200
    assert mp3.headers["Content-Type"] == "audio/mpeg"
    assert mp3.body[:3] == b"ID3" or mp3.body[0] == 0xFF
    assert mp3.headers["Content-Disposition"].endswith('.mp3"')
    cav = client.get(f"/recordings/{ident}/download?format=cav")
    assert cav.status == 200
    assert cav.body[:8] == b"\x89CAV\r\n\x1a\n"
    vox = client.get(f"/recordings/{ident}/download?format=vox")
    assert vox.status == 200
    assert len(vox.body) == 4000  # 4 bits a sample
    assert client.get(f"/recordings/{ident}/download?format=../../etc").status == 400
    left = list((portal.config.storage.data_dir / "tmp" / "portal").glob("download-*"))
    assert left == []
    assert audited(portal, username="fay", limit=1)[0].detail.startswith("vox ")


def test_bookmarks_are_listed_in_time_order_escaped_and_go_with_their_recording(
        portal: Recorder) -> None:
    assert portal.store is not None
    assert portal.store.bookmarks is not None
    add_user(portal, "bo", ("ALLOWVIEWALLRECORDS", "ALLOWCOMMENT", "ALLOWFILEDELETE"))
    add_user(portal, "reader", ("ALLOWVIEWALLRECORDS",))
    ident, _ = add_recording(portal, agent_id=None, seconds=90)
    client = client_of(portal)
    client.sign_in("bo")
    token = client.csrf(f"/recordings/{ident}")
    for offset, comment in (("1:05", "<script>alert('mark')</script>"), ("7", "greeting")):
        done = client.post(f"/recordings/{ident}/bookmarks",
                           {"csrf": token, "offset": offset, "comment": comment})
        assert done.status == 303
        assert done.location == f"/recordings/{ident}#bookmarks"
    assert client.post(f"/recordings/{ident}/bookmarks",
                       {"csrf": token, "offset": "5:00", "comment": "past the end"}
                       ).status == 400
    assert client.post(f"/recordings/{ident}/bookmarks",
                       {"csrf": token, "offset": "0:10", "comment": ""}).status == 400
    reader = client_of(portal)
    reader.sign_in("reader")
    page = reader.get(f"/recordings/{ident}").text
    assert page.index("greeting") < page.index("&lt;script&gt;alert(&#39;mark&#39;)")
    assert "<script>alert" not in page
    assert 'data-offset="65.0">0:01:05</a>' in page
    assert 'action="/recordings/' not in page.split("bookmarks-title", 1)[1].split(
        "</section>", 1)[0]  # no ALLOWCOMMENT: no form to add one
    assert audited(portal, username="bo", action="bookmark", limit=1)[0].target == str(ident)
    assert client.post(f"/recordings/{ident}/delete", {"csrf": token}).status == 303
    assert portal.store.bookmarks.list_bookmarks(ident) == []


def test_a_bookmarks_author_edits_or_deletes_its_comment_and_nobody_else_can(
        portal: Recorder) -> None:
    assert portal.store is not None
    assert portal.store.bookmarks is not None
    add_user(portal, "ed", ("ALLOWVIEWALLRECORDS", "ALLOWCOMMENT"))
    add_user(portal, "other", ("ALLOWVIEWALLRECORDS", "ALLOWCOMMENT"))
    ident, _ = add_recording(portal, agent_id=None, seconds=30)
    elsewhere, _ = add_recording(portal, agent_id=None, seconds=30)
    ed = client_of(portal)
    ed.sign_in("ed")
    token = ed.csrf(f"/recordings/{ident}")
    assert ed.post(f"/recordings/{ident}/bookmarks", {"csrf": token, "offset": "0:12",
                                                      "comment": "first take"}).status == 303
    (mark,) = portal.store.bookmarks.list_bookmarks(ident)
    change = f"/recordings/{ident}/bookmarks/change"
    hostile = "<img src=x onerror=alert(1)> \"quoted\""
    edited = ed.post(change, {"csrf": token, "action": "edit", "bookmark": mark.bookmark_id,
                              "comment": hostile})
    assert edited.status == 303
    page = ed.get(f"/recordings/{ident}").text
    assert "<img src=x" not in page
    assert 'value="&lt;img src=x onerror=alert(1)&gt; &#34;quoted&#34;"' in page
    assert portal.store.bookmarks.list_bookmarks(ident)[0].comment == hostile
    # Someone else, a form without its token, the wrong recording, nonsense: nothing changes.
    other = client_of(portal)
    other.sign_in("other")
    theirs = other.get(f"/recordings/{ident}").text
    assert f'name="bookmark" value="{mark.bookmark_id}"' not in theirs  # no forms for it
    other_token = other.csrf(f"/recordings/{ident}")
    for client, form, status in (
            (other, {"csrf": other_token, "action": "delete"}, 403),
            (ed, {"action": "delete"}, 403),
            (ed, {"csrf": token, "action": "edit", "comment": ""}, 400),
            (ed, {"csrf": token, "action": "rename", "comment": "x"}, 400)):
        answer = client.post(change, {"bookmark": mark.bookmark_id, **form})
        assert answer.status == status, (form, answer.text[:200])
    assert ed.post(f"/recordings/{elsewhere}/bookmarks/change", {
        "csrf": token, "action": "delete", "bookmark": mark.bookmark_id}).status == 404
    assert portal.store.bookmarks.list_bookmarks(ident)[0].comment == hostile
    deleted = ed.post(change, {"csrf": token, "action": "delete",
                               "bookmark": mark.bookmark_id})
    assert deleted.status == 303
    assert portal.store.bookmarks.list_bookmarks(ident) == []
    assert [e.detail for e in audited(portal, username="ed", action="bookmark")] == [
        f"deleted 0:00:12 {hostile}", f"edited 0:00:12 {hostile}", "0:00:12 first take"]
    assert [e.username for e in audited(portal, action="bookmark", limit=3)] == ["ed"] * 3


def test_a_database_failure_is_a_503_page_not_a_traceback(
        portal: Recorder, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    assert portal.store is not None
    add_user(portal, "dora", ("ALLOWVIEWALLRECORDS",))
    client = client_of(portal)
    client.sign_in("dora")

    def fails(query: object) -> None:
        raise StoreError("list recordings: disk I/O error")

    monkeypatch.setattr(portal.store.recordings, "list_recordings", fails)
    answer = client.get("/recordings")
    assert answer.status == 503
    assert "database cannot be read" in answer.text
    assert "Traceback" not in caplog.text
    assert "the database failed: list recordings: disk I/O error" in caplog.text
