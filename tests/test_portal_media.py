"""The recording page's media views against a real in-process recorder on the synthetic board:
blackouts marked on the player's timeline where the recorded file is silence."""

from __future__ import annotations

import io
import json
import re
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from recorder.app import Recorder
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    add_recording,
    api_fixture,
    call_in_progress,
    portal_fixture,
    signed_in,
)

RATE = 8000


portal = portal_fixture()
api = api_fixture()



def samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as f:
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(
            -1, f.getnchannels())


@pytest.mark.slow  # a 3.3 s live call, its blackouts timed
def test_a_calls_blackouts_are_kept_with_its_row_and_marked_where_the_file_is_silence(
        portal: Recorder, api: ApiConnection) -> None:
    assert portal.store is not None
    assert portal.journal is not None
    client = signed_in(portal, "bill", ("ALLOWVIEWALLRECORDS",))
    api.request("CALLSTART", 1, DEVICEID="1001")
    ident = call_in_progress(portal, "1001")
    time.sleep(1.0)
    api.request("BLACKOUTSTART", 2, DEVICEID="1001")
    # Noted in the crash journal as it happens, so a crash now would keep it with the row.
    noted = [json.loads(line) for line in portal.journal.path.read_text().splitlines()]
    assert any(doc["op"] == "blackouts" for doc in noted)
    time.sleep(1.0)
    api.request("BLACKOUTSTOP", 3, DEVICEID="1001")
    time.sleep(0.8)
    api.request("BLACKOUTSTART", 4, DEVICEID="1001")  # still running when the call ends
    time.sleep(0.5)
    api.request("CALLSTOP", 5, DEVICEID="1001")
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.duration is not None
    marks = portal.store.recordings.recording_blackouts(ident)
    assert len(marks) == 2
    (a, b), (c, d) = marks
    assert 0.9 < b - a < 1.3
    assert 0.3 < d - c < 0.8
    assert d == pytest.approx(row.duration, abs=0.002)  # the running one ends with the file
    audio = samples(Path(row.filename))[:, 0]
    for start, end in marks:  # silence exactly there (to the millisecond the row keeps)
        inside = audio[round(start * RATE) + 8:round(end * RATE) - 8]
        assert len(inside) > 0.2 * RATE
        assert not inside.any()
    # The audio around them is the call (the synthetic line is never digital silence).
    assert np.count_nonzero(audio[:round(a * RATE) - 8]) > 0.9 * (a * RATE - 8)
    between = audio[round(b * RATE) + 8:round(c * RATE) - 8]
    assert np.count_nonzero(between) > 0.9 * len(between)

    page = client.get(f"/recordings/{ident}").text
    width = round(row.duration * 1000)
    assert f'data-timeline="{width}"' in page
    rects = re.findall(r'<rect class="blackout" x="(\d+)" y="0" width="(\d+)"', page)
    assert [(int(x), int(w)) for x, w in rects] == [
        (round(a * 1000), round((b - a) * 1000)), (round(c * 1000), round((d - c) * 1000))]
    assert "Blackouts (silence in the recording)" in page
    assert f'data-offset="{a}"' in page


def test_a_recording_without_blackouts_has_a_plain_timeline(portal: Recorder) -> None:
    client = signed_in(portal, "nobo", ("ALLOWVIEWALLRECORDS",))
    ident, _ = add_recording(portal, agent_id=None, seconds=2.0)
    page = client.get(f"/recordings/{ident}").text
    assert 'data-timeline="2000"' in page
    assert 'class="blackout"' not in page
    assert "Blackouts (silence" not in page


def wav_samples(body: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(body), "rb") as f:
        return f.getnchannels(), np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")


def test_the_waveform_is_the_audios_peaks_computed_once(portal: Recorder) -> None:
    assert portal.portal is not None
    client = signed_in(portal, "wave", ("ALLOWVIEWALLRECORDS",))
    audio = np.zeros((2 * RATE, 1), dtype=np.int16)
    t = np.arange(RATE) / RATE
    audio[RATE:, 0] = (16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # -6 dBFS
    ident, _ = add_recording(portal, agent_id=None, samples=audio)
    answer = client.get(f"/recordings/{ident}/peaks")
    assert answer.status == 200
    found = json.loads(answer.body)
    assert found["channels"] == 1
    assert found["duration"] == pytest.approx(2.0)
    (levels,) = found["peaks"]
    assert len(levels) == 1000
    assert max(levels[:499]) == 0.0  # the silent first second
    assert all(0.45 < v <= 0.51 for v in levels[501:])  # the tone's peak, 0.5 of full scale
    computed = portal.portal.ctx.peaks.computed
    assert json.loads(client.get(f"/recordings/{ident}/peaks").body) == found
    assert portal.portal.ctx.peaks.computed == computed  # kept, not measured again
    page = client.get(f"/recordings/{ident}").text
    assert f'data-peaks="/recordings/{ident}/peaks"' in page


def test_a_stereo_recording_plays_either_side_alone(portal: Recorder) -> None:
    client = signed_in(portal, "side", ("ALLOWVIEWALLRECORDS",))
    rng = np.random.default_rng(7)
    audio = rng.integers(-20000, 20000, (RATE, 2), dtype=np.int16)
    audio[:, 1] //= 4  # the right side quieter
    ident, _ = add_recording(portal, agent_id=None, samples=audio)
    page = client.get(f"/recordings/{ident}").text
    assert 'value="left"> left only' in page
    for side, column in (("left", 0), ("right", 1)):
        answer = client.get(f"/recordings/{ident}/audio?side={side}")
        assert answer.status == 200
        channels, heard = wav_samples(answer.body)
        assert channels == 1
        np.testing.assert_array_equal(heard, audio[:, column])
    both = client.get(f"/recordings/{ident}/audio")
    assert wav_samples(both.body)[0] == 2
    peaks = json.loads(client.get(f"/recordings/{ident}/peaks").body)
    left, right = peaks["peaks"]
    # Each side measured apart: the right a quarter of the left (8 random samples a bucket).
    assert 3.5 < np.mean(left) / np.mean(right) < 4.5
    assert client.get(f"/recordings/{ident}/audio?side=middle").status == 400
    mono, _ = add_recording(portal, agent_id=None)
    refused = client.get(f"/recordings/{mono}/audio?side=left")
    assert refused.status == 400
    assert b"RIFF" not in refused.body
    assert 'name="side"' not in client.get(f"/recordings/{mono}").text


def test_mailing_without_a_mail_server_says_so(portal: Recorder) -> None:
    client = signed_in(portal, "nomail", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTEMAIL"))
    ident, _ = add_recording(portal, agent_id=None)
    answer = client.post(f"/recordings/{ident}/email", {
        "csrf": client.csrf(f"/recordings/{ident}"), "format": "wav",
        "to": "sue@example.com"})
    assert answer.status == 503
    assert "No mail server is configured" in answer.text
