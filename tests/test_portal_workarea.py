"""Files the portal writes (renditions a browser plays, one side of a stereo recording,
downloads in another format, CAV included) are admitted by the export work area like the API's
exports: a budget they do not fit, or a disk whose room the live recordings need, refuses them
with a page saying why, before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recorder.app import Recorder
from recorder.archive.cav import CavPasswordError, extract_audio, read_cav
from recorder.config.loader import config_from_dict
from recorder.store.audit import AuditQuery
from tests.helpers.portal import PortalClient, add_recording, add_user, portal_port
from tests.helpers.recorders import base_config
from tests.helpers.waiting import wait_for

MIB = 1 << 20
DOWNLOAD = ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD")


def _started(tmp: Path, **sections: object) -> Recorder:
    doc = base_config(tmp, portal={"enabled": True, "port": 0,
                                   "signin_attempts_per_minute": 10000}, **sections)
    recorder = Recorder(config_from_dict(doc, base_dir=tmp))
    recorder.start()
    return recorder


@pytest.fixture
def budget(tmp_path: Path) -> Iterator[Recorder]:
    """A recorder whose work area takes 1 MiB at most (api.export_max_bytes' least)."""
    recorder = _started(tmp_path, api={"socket_port": 0, "web_port": 0,
                                       "export_max_bytes": MIB})
    yield recorder
    recorder.stop()


def _client(recorder: Recorder, name: str) -> PortalClient:
    add_user(recorder, name, DOWNLOAD)
    client = PortalClient(portal_port(recorder))
    assert client.sign_in(name).status == 303
    return client


def _work_area(recorder: Recorder) -> list[str]:
    return sorted(p.name for p in (recorder.config.storage.data_dir / "tmp" / "portal").iterdir())


def test_a_rendition_or_download_beyond_the_budget_is_refused_with_a_page(
        budget: Recorder) -> None:
    client = _client(budget, "ann")
    # 70 s of VOX: its PCM rendition (1.1 MB) does not fit in 1 MiB.
    vox, _ = add_recording(budget, agent_id=None, seconds=70, media_format="vox")
    played = client.get(f"/recordings/{vox}/audio")
    assert played.status == 507
    assert "Not enough room" in played.text
    assert "api.export_max_bytes" in played.text
    assert b"RIFF" not in played.body
    converted = client.get(f"/recordings/{vox}/download?format=wav")
    assert converted.status == 507
    assert "cannot be converted to wav now" in converted.text
    assert _work_area(budget) == []  # nothing was written, not even in part
    stereo = add_recording(budget, agent_id=None, samples=np.zeros((70 * 8000, 2), np.int16))
    assert client.get(f"/recordings/{stereo[0]}/audio?side=left").status == 507
    assert _work_area(budget) == []
    # The stored file itself takes no room: it is sent as it is.
    stored = client.get(f"/recordings/{vox}/download")
    assert stored.status == 200
    assert stored.body == Path(str(_row(budget, vox).filename)).read_bytes()
    assert budget.exports is not None
    assert budget.exports.reserved_bytes == 0


def _row(recorder: Recorder, ident: int):  # type: ignore[no-untyped-def]
    assert recorder.store is not None
    row = recorder.store.recordings.get_recording(ident)
    assert row is not None
    return row


def test_renditions_make_room_by_removing_the_least_recently_played(budget: Recorder) -> None:
    client = _client(budget, "bob")
    # 40 s of VOX each: a 640 kB rendition; two do not fit in 1 MiB together.
    first, _ = add_recording(budget, agent_id=None, seconds=40, media_format="vox")
    second, _ = add_recording(budget, agent_id=None, seconds=40, media_format="vox")
    assert client.get(f"/recordings/{first}/audio").status == 200
    assert [n.split("-")[1] for n in _work_area(budget)] == [str(first)]
    assert client.get(f"/recordings/{second}/audio").status == 200
    assert [n.split("-")[1] for n in _work_area(budget)] == [str(second)]
    assert budget.exports is not None
    assert budget.exports.reserved_bytes <= MIB
    # A download made for its response is reserved until it has gone, then given back.
    assert client.get(f"/recordings/{first}/download?format=mp3").status == 200
    wait_for(lambda: not [n for n in _work_area(budget) if n.startswith("download-")])
    assert budget.exports.reserved_bytes <= MIB


def test_the_live_recordings_room_comes_before_a_rendition(tmp_path: Path) -> None:
    # A floor no disk can keep: the disk guard refuses every claim.
    recorder = _started(tmp_path, retention={"min_free_mb": 1 << 30})
    try:
        client = _client(recorder, "cy")
        vox, _ = add_recording(recorder, agent_id=None, seconds=2, media_format="vox")
        refused = client.get(f"/recordings/{vox}/audio")
        assert refused.status == 507
        assert "the live recordings come first" in refused.text
        assert _work_area(recorder) == []
    finally:
        recorder.stop()


@pytest.mark.slow  # two scrypt derivations of an encrypted CAV
def test_a_recording_downloads_as_cav_plain_or_encrypted_with_a_posted_password(
        budget: Recorder, tmp_path: Path) -> None:
    client = _client(budget, "dee")
    ident, path = add_recording(budget, agent_id=None, seconds=2, meta={"ANI": "6145551212"})
    page = client.get(f"/recordings/{ident}").text
    assert '<option value="cav">' in page
    assert 'type="password" name="password"' in page

    plain = client.get(f"/recordings/{ident}/download?format=cav")
    assert plain.status == 200
    assert plain.headers["Content-Disposition"].endswith('.cav"')
    saved = tmp_path / "plain.cav"
    saved.write_bytes(plain.body)
    info, audio = extract_audio(saved, tmp_path / "plain.wav")
    assert not info.encrypted
    assert info.metadata["RECORDID"] == str(ident)
    assert info.metadata["ANI"] == "6145551212"
    assert audio.read_bytes() == path.read_bytes()

    token = client.csrf(f"/recordings/{ident}")
    secret = "a long enough secret"
    sealed = client.post(f"/recordings/{ident}/download",
                         {"csrf": token, "password": secret, "repeat": secret})
    assert sealed.status == 200
    saved = tmp_path / "sealed.cav"
    saved.write_bytes(sealed.body)
    with pytest.raises(CavPasswordError):
        read_cav(saved)  # (the wrong password is the CAV tests' matter: each try is a scrypt)
    info, audio = extract_audio(saved, tmp_path / "sealed.wav", password=secret)
    assert info.encrypted
    assert audio.read_bytes() == path.read_bytes()

    for form, status in (({"password": "short", "repeat": "short"}, 400),
                         ({"password": secret, "repeat": secret + "!"}, 400),
                         ({"password": secret, "repeat": secret, "csrf": ""}, 403)):
        assert client.post(f"/recordings/{ident}/download",
                           {"csrf": token, **form}).status == status
    assert budget.store is not None
    assert budget.store.audit is not None
    details = [e.detail for e in budget.store.audit.list_audit(
        AuditQuery(action="download", username="dee"))]
    assert details[0].startswith("cav (encrypted) ")
    assert details[1].startswith("cav ")
    assert not any(secret in d for d in details)
    wait_for(lambda: not [n for n in _work_area(budget) if n.startswith("download-")])
