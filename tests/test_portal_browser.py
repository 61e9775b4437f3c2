"""The portal in a real browser: Debian's Chromium driven by Playwright (the system browser,
never a downloaded one). Sign in, search, open a recording, play it to its end (the server
sees Range requests and sets LISTENEDTO), bookmark it at the player's time, download it and
check it with ffprobe, watch the live view's meters move and a call appear, listen to it
live, sign out; a stereo recording's waveform bands and its left side played alone.
No console errors (a Content-Security-Policy violation would be one). Screenshots of each
page go to $PORTAL_ARTIFACTS (else the test's temporary directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.store.audit import AuditQuery
from tests.helpers.api import ApiConnection
from tests.helpers.portal import PASSWORD, add_recording, add_user, portal_port, portal_recorder

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Imported here, not with the module: these tests are all slow, and importing Playwright
    # cost every fast-lane worker most of a second of its collection.
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            # root in a container has no user namespace for Chromium's sandbox; no sound card
            # either, so audio goes to a fake output (it still plays, in real time).
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Recorder]:
    recorder = portal_recorder(tmp_path)
    yield recorder
    recorder.stop()


def test_sign_in_search_play_download_and_sign_out(browser: Any, portal: Recorder,
                                                   tmp_path: Path) -> None:
    assert portal.store is not None
    artifacts = Path(os.environ.get("PORTAL_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    add_user(portal, "bea", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD", "ALLOWFILEDELETE",
                             "ALLOWCOMMENT", "ALLOWLIVEMONITOR"))
    ident, path = add_recording(portal, agent_id=None, seconds=1.5,
                                meta={"ANI": "6145551212", "USER1": "<b>acct</b>"})
    add_recording(portal, agent_id=None, meta={"ANI": "5550000"})
    base = f"http://127.0.0.1:{portal_port(portal)}"
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    ranges: list[str] = []
    page.on("request", lambda r: ranges.append(r.headers.get("range", ""))
            if r.url.endswith("/audio") else None)

    page.goto(base + "/recordings")  # not signed in: sent to the sign-in page
    assert page.url.startswith(base + "/signin")
    page.screenshot(path=str(artifacts / "signin.png"))
    page.fill("#username", "bea")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/recordings**")

    page.click("summary")  # the call-details filters
    page.fill("input[name=ani]", "6145551212")
    page.click("form.search button[type=submit]")
    page.wait_for_url("**ani=6145551212**")
    rows = page.locator("table.results tbody tr")
    assert rows.count() == 1
    shown = page.locator("table.results time").first.inner_text()
    assert not shown.endswith("Z")  # the script put it in the browser's local time
    page.screenshot(path=str(artifacts / "search.png"), full_page=True)

    page.click(f"text=Open {ident}")
    page.wait_for_url(f"{base}/recordings/{ident}")
    assert "<b>acct</b>" in page.inner_text("table.meta")  # shown as text, not markup
    page.screenshot(path=str(artifacts / "recording.png"), full_page=True)
    assert ranges == []  # preload="none": opening the page is not listening
    ended = page.evaluate("""() => new Promise((resolve, reject) => {
        const audio = document.querySelector("audio");
        audio.addEventListener("ended", () => resolve(audio.duration));
        audio.addEventListener("error", () => reject(String(audio.error && audio.error.code)));
        audio.play().catch(reject);
    })""")
    assert abs(ended - 1.5) < 0.1
    assert ranges
    # The waveform drawn from the server's peaks (the test file is a loud pattern throughout),
    # and a click on the timeline's middle plays from the middle.
    page.wait_for_selector("canvas[data-drawn='1']", timeout=5000)
    inked = page.evaluate("""() => {
        const c = document.querySelector("canvas[data-peaks]");
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) { if (data[i]) { inked++; } }
        return inked / (c.width * c.height);
    }""")
    assert inked > 0.3
    box = page.locator("svg[data-timeline]").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => !document.querySelector('audio').paused")
    at = page.evaluate("() => document.querySelector('audio').currentTime")
    assert 0.6 < at < 1.2, at
    page.evaluate("""() => new Promise((resolve) => {
        const audio = document.querySelector("audio");
        audio.pause();
        audio.addEventListener("seeked", resolve, {once: true});
        audio.currentTime = 1.4;  // back near the end, where the bookmark below is made
    })""")
    assert all(r.startswith("bytes=") for r in ranges)
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.listened_to

    # A bookmark at the player's time (the script keeps the field at it: 1 s, where it ended).
    assert page.input_value("input[name=offset]") == "0:01"
    page.fill("input[name=comment]", "customer <asks> for a refund")
    page.click("text=Add bookmark")
    page.wait_for_url(f"{base}/recordings/{ident}#bookmarks")
    assert "0:00:01 customer <asks> for a refund" in page.inner_text("ul.bookmarks")
    page.screenshot(path=str(artifacts / "bookmark.png"), full_page=True)

    with page.expect_download() as download:
        page.click("p.actions >> text=Download")
    saved = tmp_path / "download.wav"
    download.value.save_as(saved)
    assert saved.read_bytes() == path.read_bytes()
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                "stream=codec_name,sample_rate,channels", "-of", "csv=p=0",
                                str(saved)], capture_output=True, text=True, check=True)
        assert probe.stdout.strip() == "pcm_s16le,8000,1"

    # The live view: the meters move while the synthetic board talks, and a call started
    # meanwhile shows up among the calls being recorded, without reloading the page.
    page.click("text=Live")
    page.wait_for_url(base + "/live")
    meter = page.locator('tr[data-channel="1"] meter')
    levels = set()
    for _ in range(8):
        levels.add(meter.evaluate("m => m.value"))
        page.wait_for_timeout(300)
    assert len(levels) > 1
    assert portal.api is not None
    conn = ApiConnection(portal.api.socket_address[1])
    try:
        conn.request("CALLSTART", 1, DEVICEID="1003")
        page.wait_for_selector("#live-calls >> text=on 1003", timeout=5000)
        page.screenshot(path=str(artifacts / "live.png"), full_page=True)
        # Listening live: the page plays the call's stream through Web Audio as it comes.
        page.click("#live-calls >> text=Listen")
        played = page.evaluate("""() => new Promise((resolve) => {
            const status = document.getElementById("live-listening");
            const began = performance.now();
            const timer = setInterval(() => {
                const context = status.audioContext;
                const heard = parseFloat(status.getAttribute("data-heard"));
                const waited = (performance.now() - began) / 1000;
                if ((context && context.currentTime > 2.0) || waited > 8) {
                    clearInterval(timer);
                    resolve({clock: context ? context.currentTime : -1, heard: heard,
                             queued: parseFloat(status.getAttribute("data-queued")),
                             skipped: parseFloat(status.getAttribute("data-skipped")),
                             state: context ? context.state : "none", waited: waited,
                             text: status.textContent});
                }
            }, 100);
        })""")
        # The audio clock ran 2 s playing the call; the stream arrived as the line spoke it
        # (about as much audio as wall-clock time, the half-second start behind the line and a
        # slow first fetch on a busy machine aside); and what waits to be played stays under the
        # player's one-second cap: an audio clock that starts late is caught up by skipping,
        # never by playing ever further behind the line.
        assert played["state"] == "running", played
        assert played["clock"] > 2.0, played
        assert played["waited"] < 5.0, played
        assert played["waited"] - 2.5 < played["heard"] < played["waited"] + 1.5, played
        assert 0 < played["queued"] <= 1.0, played
        assert played["heard"] - played["skipped"] > 1.5, played
        assert "Listening to recording" in played["text"]
        # An audio clock that stops for two seconds (what a slow audio device start looks
        # like) does not leave the listener two seconds behind the line: the excess is skipped.
        caught_up = page.evaluate("""async () => {
            const status = document.getElementById("live-listening");
            await status.audioContext.suspend();
            await new Promise((done) => setTimeout(done, 2000));
            await status.audioContext.resume();
            await new Promise((done) => setTimeout(done, 300));
            return {queued: parseFloat(status.getAttribute("data-queued")),
                    skipped: parseFloat(status.getAttribute("data-skipped"))};
        }""")
        assert caught_up["queued"] <= 1.0, caught_up
        assert caught_up["skipped"] >= 0.5, caught_up
        page.screenshot(path=str(artifacts / "listen.png"), full_page=True)
        page.click("#live-stop")
        assert page.inner_text("#live-listening") == "Stopped."
    finally:
        conn.request("CALLSTOP", 2, DEVICEID="1003")
        conn.close()

    page.click("text=Sign out")
    page.wait_for_url(base + "/signin")
    page.goto(f"{base}/recordings/{ident}")
    assert page.url.startswith(base + "/signin")
    assert errors == []
    assert portal.store.audit is not None
    actions = [e.action for e in portal.store.audit.list_audit(AuditQuery(username="bea"))]
    assert actions[:6] == ["signout", "listen", "download", "bookmark", "play", "search"]
    context.close()


def test_an_administrator_creates_a_user_and_a_role_in_the_browser(browser: Any,
                                                                  portal: Recorder,
                                                                  tmp_path: Path) -> None:
    artifacts = Path(os.environ.get("PORTAL_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    add_user(portal, "root", ("ALLOWAGENTADMIN", "ALLOWVIEWALLRECORDS", "AUDITREPORTING"))
    base = f"http://127.0.0.1:{portal_port(portal)}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base + "/signin")
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/recordings**")
    page.click("header >> text=Users")
    page.click("text=Roles and their permissions")
    page.fill("#role-name", "Supervisors")
    page.click("text=Add role")
    page.wait_for_url(base + "/admin/roles")
    section = page.locator("section.role", has_text="Supervisors")
    assert section.locator("input[value=ALLOWFILEDELETE]").is_disabled()  # not root's to give
    section.locator("input[value=ALLOWVIEWALLRECORDS]").check()
    section.locator("text=Save Supervisors").click()
    page.wait_for_url(base + "/admin/roles")
    page.screenshot(path=str(artifacts / "admin-roles.png"), full_page=True)
    page.goto(base + "/admin/users")
    page.fill("#new-username", "sup")
    page.fill("#new-first", "Sue")
    page.fill("#new-last", "Pervisor")
    page.fill("#new-password", "supervising well")
    page.click("text=Add user")
    page.wait_for_url(base + "/admin/users")
    row = page.locator("tr", has_text="Sue Pervisor")
    row.locator("label", has_text="Supervisors").locator("input").check()
    row.locator("text=Set roles").click()
    page.wait_for_url(base + "/admin/users")
    page.screenshot(path=str(artifacts / "admin-users.png"), full_page=True)
    page.goto(base + "/audit?user=root")
    assert page.locator("table.results tbody tr").count() >= 4
    page.screenshot(path=str(artifacts / "audit.png"), full_page=True)
    other = browser.new_context().new_page()
    other.goto(base + "/signin")
    other.fill("#username", "sup")
    other.fill("#password", "supervising well")
    other.click("button[type=submit]")
    other.wait_for_url(base + "/recordings**")
    assert errors == []
    context.close()


def test_a_stereo_recordings_sides_play_alone_in_the_browser(browser: Any, portal: Recorder,
                                                            tmp_path: Path) -> None:
    import numpy as np  # noqa: PLC0415

    add_user(portal, "sid", ("ALLOWVIEWALLRECORDS",))
    t = np.arange(3 * 8000) / 8000
    audio = np.stack([(12000 * np.sin(2 * np.pi * 440 * t)),
                      np.zeros_like(t)], axis=1).astype(np.int16)  # left a tone, right silent
    ident, _ = add_recording(portal, agent_id=None, samples=audio)
    base = f"http://127.0.0.1:{portal_port(portal)}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 else None)
    page.goto(base + "/signin")
    page.fill("#username", "sid")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/recordings**")
    page.goto(f"{base}/recordings/{ident}")
    # The waveform shows a stereo file's two bands: the left inked, the right flat.
    page.wait_for_selector("canvas[data-drawn='2']", timeout=5000)
    bands = page.evaluate("""() => {
        const c = document.querySelector("canvas[data-peaks]");
        const ink = (y0, y1) => {
            const d = c.getContext("2d").getImageData(0, y0, c.width, y1 - y0).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) { if (d[i]) { n++; } }
            return n / (c.width * (y1 - y0));
        };
        return [ink(0, c.height / 2), ink(c.height / 2, c.height)];
    }""")
    assert 0.3 < bands[0] < 0.45  # the tone's peak is 0.37 of full scale
    assert bands[1] <= 0.06  # a hairline (one pixel, anti-aliased over two rows): silence
    page.evaluate("() => document.querySelector('audio').play()")
    page.wait_for_function("() => document.querySelector('audio').currentTime > 0.5")
    page.check("input[name=side][value=left]")
    # The player switches to the left side alone, at the same place, and plays on.
    page.wait_for_function("""() => {
        const a = document.querySelector("audio");
        return a.src.endsWith("?side=left") && !a.paused && a.currentTime > 0.8;
    }""", timeout=8000)
    artifacts = Path(os.environ.get("PORTAL_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "stereo.png"), full_page=True)
    assert errors == []
    context.close()
