"""atheris (libFuzzer) harness over the socket API's path: bytes cut into chunks as a network
would, framed by MessageFramer, parsed by the hardened XML codec and answered by the dispatcher
of a real recorder (synthetic board, SQLite store in FUZZ_DATA_DIR or a temporary directory).

Any exception, or an answer that is not one line of RESULT XML with a defined code other than
11 (an internal error), is a crash that libFuzzer saves. Run it for a while:

    .venv/bin/python fuzz/fuzz_api.py -max_total_time=600 fuzz/corpus

tests/test_fuzz.py runs it for a few seconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import atheris
from lxml import etree

with atheris.instrument_imports(include=["recorder.api"]):
    from recorder.api.dispatcher import Dispatcher
    from recorder.api.transport.framing import MessageFramer, MessageTooLarge

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.resultcodes import ResultCode

MAX_MESSAGE = 8192  # small, so the limit is reached often
CODES = frozenset(int(code) for code in ResultCode)


def start_recorder(data_dir: Path) -> Recorder:
    """A recorder on free ports with its data in ``data_dir``, started."""
    config = config_from_dict({
        "storage": {"data_dir": str(data_dir)},
        "api": {"socket_port": 0, "web_port": 0},
        "boards": [{"driver": "synthetic", "devices": ["1001", "1002"]}],
    }, base_dir=data_dir.parent)
    recorder = Recorder(config)
    recorder.start()
    return recorder


def run_input(dispatcher: Dispatcher, data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Frame ``data`` (arriving in pieces of the sizes in ``cuts``, in turn) and answer each
    message; the answers, each checked."""
    framer = MessageFramer(MAX_MESSAGE)
    answers: list[bytes] = []
    pos = 0
    turn = 0
    while pos < len(data):
        size = max(1, cuts[turn % len(cuts)] if cuts else len(data))
        turn += 1
        chunk, pos = data[pos : pos + size], pos + size
        try:
            messages = framer.feed(chunk)
        except MessageTooLarge as exc:
            messages = exc.complete
        answers += (dispatcher.handle_xml(message) for message in messages)
    tail = framer.flush()
    if tail is not None:
        answers.append(dispatcher.handle_xml(tail))
    for answer in answers:
        check(answer)
    return answers


def check(answer: bytes) -> None:
    if b"\n" in answer or b"\r" in answer:
        raise AssertionError(f"an answer spans lines: {answer[:200]!r}")
    result = etree.fromstring(answer)
    code = int(result.findtext("RESULTCODE") or -1)
    if result.tag != "RESULT" or code not in CODES:
        raise AssertionError(f"not a RESULT the manual defines: {answer[:200]!r}")
    if code == ResultCode.API_ERROR_PROCESSING_MESSAGE:
        raise AssertionError(f"internal error: {answer[:300]!r}")


def main(argv: list[str]) -> None:
    data_dir = Path(os.environ.get("FUZZ_DATA_DIR") or tempfile.mkdtemp(prefix="fuzz-api-"))
    recorder = start_recorder(data_dir)
    dispatcher = recorder.dispatcher
    assert dispatcher is not None

    def one_input(raw: bytes) -> None:
        provider = atheris.FuzzedDataProvider(raw)
        cuts = provider.ConsumeIntListInRange(4, 1, 512)
        run_input(dispatcher, provider.ConsumeBytes(provider.remaining_bytes()), cuts)

    atheris.Setup(argv, one_input)
    # libFuzzer ends the process itself (exit status 0 when its time is up), so the recorder's
    # threads are not stopped: its data directory is a scratch one.
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
