"""EXPORT, COMBINEDEXPORT and MULTIEXPORT over real HTTP (and HTTPS), against a real recorderd
that recorded tone lines; every file that comes back is checked with ffmpeg or sox."""

from __future__ import annotations

import io
import re
import ssl
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile
from lxml import etree

from recorder.app import Recorder
from recorder.archive.cav import CavPasswordError, extract_audio, read_cav
from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.errors import ConfigError, StartupError
from tests.helpers.api import expect
from tests.helpers.exports import decode, dominant_hz, record, tone_boards
from tests.helpers.net import self_signed
from tests.helpers.recorders import RecorderProcess, Running, base_config, write_toml

TLS_PORT = re.compile(r"WebAPI listening on https://[^:]+:(\d+)/")
PROCESS_FIXTURES = {"recorded"}  # its recorderd serves the module's tests (conftest.py)
# One worker runs the module, so only one recorderd is started for it (scripts/test).
pytestmark = pytest.mark.xdist_group("webapi-export")


@dataclass
class Recorded:
    """The recorder under test and the calls it recorded: 2001 (440 Hz, USER2 10121968),
    2002 (1 kHz), 2003 (660 Hz at 16 kHz)."""

    running: Running
    tls_port: int
    cert: Path
    calls: Mapping[str, Mapping[str, str]]

    def ident(self, device: str) -> str:
        return self.calls[device]["RECORDID"]

    def frames(self, device: str) -> int:
        return int(soundfile.info(self.calls[device]["FILENAME"]).frames)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    tmp = tmp_path_factory.mktemp("export")
    cert, key = self_signed(tmp)
    config = config_from_dict(base_config(tmp, boards=tone_boards(tmp), api={
        "socket_port": 0, "web_port": 0, "tls_port": 0, "tls_cert": str(cert),
        "tls_key": str(key)}), base_dir=tmp)
    proc = RecorderProcess(["--config", str(write_toml(tmp / "recorder.toml",
                                                       to_toml(config)))])
    try:
        running = proc.wait_ready()
        running.data_dir = config.storage.data_dir
        tls = TLS_PORT.search(proc.log)
        assert tls, proc.log
        conn = running.connect()
        time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
        calls = {"2001": record(conn, "2001", 1.5, user2="10121968", ani="6145551212"),
                 "2002": record(conn, "2002", 1.0),
                 "2003": record(conn, "2003", 1.0)}
        conn.close()
        yield Recorded(running, int(tls.group(1)), cert, calls)
    finally:
        code = proc.stop()
    assert code == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def xml(self) -> etree._Element:
        assert self.headers["Content-Type"].startswith("text/xml"), self.headers
        return etree.fromstring(self.body)

    def save(self, directory: Path) -> Path:
        """The body under the name Content-Disposition gives it."""
        found = re.fullmatch(r'attachment; filename="([^"/]+)"',
                             self.headers.get("Content-Disposition", ""))
        assert found, self.headers
        path = directory / found.group(1)
        path.write_bytes(self.body)
        return path


def fetch(port: int, query: str, *, path: str = "/webAPI.aspx", method: str = "GET",
          headers: Mapping[str, str] | None = None, body: bytes | None = None,
          scheme: str = "http", context: ssl.SSLContext | None = None) -> Answer:
    url = f"{scheme}://127.0.0.1:{port}{path}?{query}"
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def web(recorded: Recorded, query: str, **options: object) -> Answer:
    return fetch(recorded.running.web_port, query, **options)  # type: ignore[arg-type]


AUDIO = [("wav", "audio/wav", ".wav"), ("mp3", "audio/mpeg", ".mp3"),
         ("vox", "application/octet-stream", ".vox"), ("wav-ulaw", "audio/wav", ".wav"),
         ("wav-alaw", "audio/wav", ".wav")]


@pytest.mark.parametrize(("fmt", "content_type", "suffix"), AUDIO)
def test_export_by_the_manuals_url_in_each_audio_format(
        recorded: Recorded, tmp_path: Path, fmt: str, content_type: str, suffix: str) -> None:
    answer = web(recorded, "type=export&requestid=10482345&uniquefield=user2&uniqueid=10121968"
                 f"&media_format={fmt}")
    assert (answer.status, answer.headers["Content-Type"]) == (200, content_type)
    saved = answer.save(tmp_path)
    ident = recorded.ident("2001")
    assert saved.name.startswith(f"{ident}-2001-")
    assert saved.suffix == suffix
    samples, rate = decode(saved, "vox" if fmt == "vox" else fmt)
    assert rate == 8000
    # The whole recording (CALLSTART - 0.5 s pre-roll to CALLSTOP), and it is the line's tone.
    assert abs(len(samples) - recorded.frames("2001")) <= 0.02 * 8000
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=5)


def test_export_by_other_unique_fields(recorded: Recorded, tmp_path: Path) -> None:
    for query in (f"uniquefield=RECORDID&uniqueid={recorded.ident('2002')}",
                  f"uniquefield=Ident&uniqueid={recorded.ident('2002')}",
                  "uniquefield=device_id&uniqueid=2002", "uniquefield=DEVICEID&uniqueid=2002"):
        answer = web(recorded, f"type=export&requestid=1&{query}&media_format=WAV")
        assert answer.status == 200, answer.body[:300]
        samples, rate = decode(answer.save(tmp_path), "wav")
        assert dominant_hz(samples, rate) == pytest.approx(1000, abs=5), query


def test_export_as_cav_plain_and_encrypted(recorded: Recorded, tmp_path: Path) -> None:
    ident = recorded.ident("2001")
    plain = web(recorded, f"type=export&requestid=2&uniquefield=ident&uniqueid={ident}"
                "&media_format=cav")
    assert plain.headers["Content-Type"] == "application/octet-stream"
    info = read_cav(plain.save(tmp_path))
    assert not info.encrypted
    assert (info.metadata["RECORDID"], info.metadata["USER2"], info.metadata["ANI"]) == (
        ident, "10121968", "6145551212")
    # The manual's own example: an MP3, encrypted with the password "test", comes as a CAV.
    sealed = web(recorded, "type=export&requestid=10482345&uniquefield=user2&uniqueid=10121968"
                 "&media_format=mp3&encrypt=Y&password=test")
    assert sealed.status == 200
    path = sealed.save(tmp_path)
    assert path.suffix == ".cav"
    with pytest.raises(CavPasswordError):
        read_cav(path, "wrong")
    info, inside = extract_audio(path, tmp_path / "inside.mp3", password="test")
    assert (info.encrypted, info.audio.format, info.metadata["RECORDID"]) == (
        True, "mp3", recorded.ident("2001"))
    samples, rate = decode(inside, "mp3")
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=5)


def test_single_exports_honour_range_requests(recorded: Recorded) -> None:
    query = f"type=export&requestid=3&uniquefield=ident&uniqueid={recorded.ident('2001')}" \
            "&media_format=wav"
    whole = web(recorded, query).body
    first = web(recorded, query, headers={"Range": "bytes=0-99"})
    assert (first.status, first.headers["Content-Range"]) == (206, f"bytes 0-99/{len(whole)}")
    assert first.body == whole[:100]
    rest = web(recorded, query, headers={"Range": "bytes=1000-"})
    assert (rest.status, rest.body) == (206, whole[1000:])


def test_post_with_query_parameters_to_a_path_spelled_webapi_aspx(recorded: Recorded,
                                                                   tmp_path: Path) -> None:
    query = (f"type=export&requestid=4&uniquefield=ident&uniqueid={recorded.ident('2003')}"
             "&media_format=wav")
    answer = web(recorded, query, path="/Webapi.aspx", method="POST", body=b"")
    assert answer.status == 200
    samples, rate = decode(answer.save(tmp_path), "wav")
    assert rate == 16000
    assert dominant_hz(samples, rate) == pytest.approx(660, abs=5)
    # The same as a form body.
    form = web(recorded, "", path="/webAPI.php", method="POST", body=query.encode(),
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 200
    assert form.body == answer.body


@pytest.mark.parametrize("spelling", ["combinedexport", "COMBINEEXPORT"])
def test_combined_export_joins_recordings_of_different_rates(
        recorded: Recorded, tmp_path: Path, spelling: str) -> None:
    a, c = recorded.ident("2001"), recorded.ident("2003")
    answer = web(recorded, f"type={spelling}&requestid=10482345&ident={a},{c}&media_format=wav")
    assert (answer.status, answer.headers["Content-Type"]) == (200, "audio/wav")
    path = answer.save(tmp_path)
    assert path.name == f"combined-{a}-{c}.wav"
    samples, rate = decode(path, "wav")
    assert rate == 16000  # the higher of the two: nothing of the 16 kHz recording is lost
    first = 2 * recorded.frames("2001")  # 8 kHz frames at 16 kHz
    assert abs(len(samples) - (first + recorded.frames("2003"))) <= 0.02 * rate
    assert dominant_hz(samples[: first - 800], rate) == pytest.approx(440, abs=5)
    assert dominant_hz(samples[first + 800:], rate) == pytest.approx(660, abs=5)


def test_combined_export_as_mp3(recorded: Recorded, tmp_path: Path) -> None:
    b, a = recorded.ident("2002"), recorded.ident("2001")
    answer = web(recorded, f"type=combinedexport&requestid=5&ident={b},{a}&media_format=mp3")
    assert answer.headers["Content-Type"] == "audio/mpeg"
    samples, rate = decode(answer.save(tmp_path), "mp3")
    first = recorded.frames("2002")
    assert rate == 8000
    assert abs(len(samples) - (first + recorded.frames("2001"))) <= 0.05 * rate
    assert dominant_hz(samples[: first - 400], rate) == pytest.approx(1000, abs=5)
    assert dominant_hz(samples[first + 400:], rate) == pytest.approx(440, abs=5)


def test_multiexport_is_a_zip_of_the_single_exports(recorded: Recorded, tmp_path: Path) -> None:
    idents = [recorded.ident(d) for d in ("2001", "2002", "2003")]
    answer = web(recorded, f"type=multiexport&requestid=10482345&ident={','.join(idents)}"
                 "&media_format=mp3")
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/zip")
    assert answer.save(tmp_path).name == f"recordings-{idents[0]}-{idents[-1]}.zip"
    with zipfile.ZipFile(io.BytesIO(answer.body)) as archive:
        names = archive.namelist()
        assert [name.split("-")[0] for name in names] == idents
        archive.extractall(tmp_path / "unzipped")
    for name, device, hz in zip(names, ("2001", "2002", "2003"), (440, 1000, 660), strict=True):
        assert name.startswith(f"{recorded.ident(device)}-{device}-")
        assert name.endswith(".mp3")
        samples, rate = decode(tmp_path / "unzipped" / name, "mp3")
        assert dominant_hz(samples, rate) == pytest.approx(hz, abs=5)
        assert abs(len(samples) / rate - recorded.frames(device) / rate) < 0.05


def test_the_same_over_https(recorded: Recorded, tmp_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(recorded.cert))
    test = fetch(recorded.tls_port, "type=test&requestid=1", scheme="https", context=context)
    expect(test.xml, 20)
    answer = fetch(recorded.tls_port, f"type=export&requestid=2&uniquefield=ident&uniqueid="
                   f"{recorded.ident('2002')}&media_format=wav", scheme="https", context=context)
    samples, rate = decode(answer.save(tmp_path), "wav")
    assert dominant_hz(samples, rate) == pytest.approx(1000, abs=5)
    # Without trusting the certificate, a client refuses the connection.
    with pytest.raises(urllib.error.URLError):
        fetch(recorded.tls_port, "type=test&requestid=1", scheme="https",
              context=ssl.create_default_context())


def test_refusals_are_results_with_the_manuals_codes(recorded: Recorded) -> None:
    a = recorded.ident("2001")
    for query, code, message in (
        ("type=export&requestid=1&uniquefield=user2&uniqueid=nobody&media_format=wav", 41,
         "no recording with UNIQUEFIELD user2 = 'nobody'"),
        ("type=export&requestid=1&uniquefield=password&uniqueid=1&media_format=wav", 16,
         "UNIQUEFIELD must be a column of the Recording table"),
        ("type=export&requestid=1&uniquefield=ident", 16,
         "UNIQUEID and MEDIA_FORMAT are required"),
        (f"type=export&requestid=1&uniquefield=ident&uniqueid={a}&media_format=ogg", 16,
         "MEDIA_FORMAT must be one of WAV, MP3, VOX, CAV"),
        (f"type=export&requestid=1&uniquefield=ident&uniqueid={a}&media_format=cav&encrypt=Y",
         16, "PASSWORD is required with ENCRYPT=Y"),
        (f"type=export&requestid=1&uniquefield=ident&uniqueid={a}&media_format=cav&password=x",
         16, "PASSWORD is only used with ENCRYPT=Y"),
        (f"type=combinedexport&requestid=1&ident={a}&media_format=cav", 16,
         "MEDIA_FORMAT must be one of"),
        (f"type=combinedexport&requestid=1&ident={a},999999&media_format=wav", 41,
         "no recording with IDENT 999999"),
        ("type=multiexport&requestid=1&ident=12;13&media_format=wav", 16,
         "IDENT must be RECORDIDs separated by commas"),
        ("type=multiexport&requestid=1&media_format=wav", 16, "IDENT is required"),
        (f"type=export&uniquefield=ident&uniqueid={a}&media_format=wav", 14, "REQUESTID"),
    ):
        answer = web(recorded, query)
        assert answer.status == 200
        result = answer.xml
        expect(result, code, starts=message)
        assert result.findtext("REQUESTTYPE") == re.search(r"type=(\w+)", query)[1].upper()


def test_over_the_socket_the_media_functions_point_to_the_webapi(recorded: Recorded) -> None:
    for request_type in ("EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT"):
        result = recorded.running.request(request_type, 1, ident=recorded.ident("2001"),
                                          media_format="wav")
        expect(result, 15, starts="this function answers with the recording's media and is "
               "only available through the WebAPI")


def test_a_recording_in_progress_or_without_its_file_is_not_found(recorded: Recorded) -> None:
    conn = recorded.running.connect()
    try:
        expect(conn.request("CALLSTART", 1, deviceid="2002", user3="live one"), 20)
        answer = web(recorded, "type=export&requestid=1&uniquefield=user3&uniqueid=live%20one"
                     "&media_format=wav")
        expect(answer.xml, 41, starts="recording")
        assert "is still in progress" in (answer.xml.findtext("RESULTMSG") or "")
        expect(conn.request("CALLSTOP", 2, deviceid="2002"), 20)
        answer = web(recorded, "type=export&requestid=1&uniquefield=user3&uniqueid=live%20one"
                     "&media_format=wav")
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "audio/wav"
        gone = conn.request("CALLLIST", 3, user3="live one").find("SEARCHRESULT")
        assert gone is not None
        Path(gone.findtext("FILENAME") or "").unlink()
        answer = web(recorded, "type=export&requestid=1&uniquefield=user3&uniqueid=live%20one"
                     "&media_format=mp3")
        expect(answer.xml, 41, starts=f"the file of recording {gone.findtext('RECORDID')} is "
               "missing")
    finally:
        conn.close()


def test_no_export_is_left_behind(recorded: Recorded) -> None:
    """Run last: every export above was written to the work directory and removed after."""
    work = recorded.running.data_dir / "tmp"
    deadline = time.monotonic() + 5
    while list(work.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(work.iterdir()) == []


def test_https_settings_are_checked_naming_the_key(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    for api, problem in (
        ({"tls_cert": str(cert)}, "api.tls_key: required with api.tls_cert (HTTPS needs both)"),
        ({"tls_cert": "nowhere.crt", "tls_key": str(key)},
         f"api.tls_cert: no such file: {tmp_path / 'nowhere.crt'}"),
        ({"tls_cert": str(cert), "tls_key": str(key), "tls_port": 2012},
         "api.tls_port: 2012 is also api.web_port"),
    ):
        with pytest.raises(ConfigError) as raised:
            config_from_dict({"api": api}, base_dir=tmp_path)
        assert problem in raised.value.problems, raised.value.problems
    # Relative paths are relative to the config file, like every other path.
    relative = config_from_dict({"api": {"tls_cert": cert.name, "tls_key": key.name}},
                                base_dir=tmp_path)
    assert (relative.api.tls_cert, relative.api.tls_key) == (str(cert), str(key))


def test_a_certificate_that_does_not_load_stops_the_start(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    _, other_key = self_signed(tmp_path, "other")
    config = config_from_dict(base_config(tmp_path, api={
        "socket_port": 0, "web_port": 0, "tls_port": 0, "tls_cert": str(cert),
        "tls_key": str(other_key)}), base_dir=tmp_path)
    recorder = Recorder(config)
    with pytest.raises(StartupError, match=r"^api\.tls_cert: cannot use .*recorder\.crt with "
                                           r"the key .*other\.key"):
        recorder.start()
