"""A voice modem (DCE) on a pty that holds its DTE to the rules of ITU-T V.253 and V.250, written
from those texts for tests/test_voicemodem_v253.py. It is not tests/helpers/modem_emulator.py
(which the driver was developed against) and shares nothing with it: a second reading of the
standard. No tests here.

What it enforces, and notes in ``violations`` (besides answering ERROR) when the DTE breaks it:

- V.250: a command line starts with ``AT`` (whatever precedes it is ignored) and ends with CR;
  the DCE echoes it (E1, the default) and answers with verbose result codes, CR LF text CR LF.
  ``ATZ`` restores the defaults (+FCLASS=0, echo on).
- V.253: the voice commands (``+V...``) are only available once ``+FCLASS=8`` selected voice
  mode; ``+VSM=?`` lists the compression methods, ``+VSM=<cml>,<vsr>`` must name a listed one
  at a listed rate; ``+VLS=<label>`` must name an offered source; ``+VRX`` (voice receive)
  needs a method and is answered ``CONNECT``, after which the DCE sends DLE-shielded voice
  data and event codes; the DTE's ``<DLE>!`` ends it, and the DCE answers ``<DLE><ETX>`` and
  ``OK``.
"""

from __future__ import annotations

import os
import re
import threading
import time
import tty
from types import TracebackType

DLE, ETX = 0x10, 0x03
VSM_LIST = ('0,"SIGNED PCM",8,0,8000,0,0', '1,"UNSIGNED PCM",8,0,8000,0,0',
            '4,"G711U",8,0,8000,0,0', '5,"G711A",8,0,8000,0,0')
VSM_OFFERED = {(0, 8000), (1, 8000), (4, 8000), (5, 8000)}
VLS_OFFERED = (0, 1)  # 0: the DCE on-hook, the phone on the line; 1: the DCE on the line
_VSM_SET = re.compile(r"AT\+VSM=(\d+),(\d+)\Z")
_VLS_SET = re.compile(r"AT\+VLS=(\d+)\Z")


class V253Dce:
    """One modem on a pty; ``path`` is the DTE's end. Use as a context manager."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.commands: list[str] = []  # every command line, as received (without CR)
        self.violations: list[str] = []
        self.fclass = 0
        self.method: tuple[int, int] | None = None
        self.source: int | None = None
        self.receiving = False
        self._line = bytearray()
        self._dle = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="v253-dce", daemon=True)

    def __enter__(self) -> V253Dce:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._master)
        os.close(self._slave)

    # --- what the line does --------------------------------------------------------------

    def send(self, data: bytes) -> None:
        with self._lock:
            os.write(self._master, data)

    def result(self, text: str) -> None:
        self.send(b"\r\n" + text.encode("ascii") + b"\r\n")

    def stream(self, data: bytes) -> None:
        """Voice data, DLE-shielded; only while receiving."""
        assert self.receiving, "voice data outside voice receive"
        self.send(data.replace(bytes([DLE]), bytes([DLE, DLE])))

    def wait(self, predicate: str, timeout: float = 10.0) -> bool:
        """Wait until the DTE has sent the command ``predicate``, or ``"<DLE>!"``."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate in self.commands, timeout)

    # --- the DTE's side -----------------------------------------------------------------

    def _read(self) -> None:
        os.set_blocking(self._master, False)
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            except OSError:
                return
            for byte in data:
                self._byte(byte)

    def _byte(self, byte: int) -> None:
        if self._dle:
            self._dle = False
            if byte == ord("!"):
                self._note("<DLE>!")
                if self.receiving:  # V.253 receive abort: end the stream, then OK
                    self.receiving = False
                    self.send(bytes([DLE, ETX]) + b"\r\nOK\r\n")
            return
        if byte == DLE:
            self._dle = True
            return
        if self.receiving:
            return  # the DTE sends nothing else during voice receive
        if byte != 0x0D:
            self._line.append(byte)
            return
        raw = self._line.decode("ascii", "replace")
        self._line.clear()
        at = raw.upper().find("AT")
        if at < 0:
            return  # no command on this line: V.250 ignores it
        line = raw[at:]
        self.send(line.encode("ascii") + b"\r")  # echo (E1)
        self._command(line.upper())

    def _note(self, command: str) -> None:
        with self._changed:
            self.commands.append(command)
            self._changed.notify_all()

    def _refuse(self, command: str, why: str) -> None:
        self.violations.append(f"{command}: {why}")
        self.result("ERROR")

    def _command(self, command: str) -> None:
        self._note(command)
        if command == "ATZ":
            self.fclass, self.method, self.source = 0, None, None
            self.result("OK")
        elif command in ("AT+FCLASS=0", "AT+FCLASS=8"):
            self.fclass = int(command[-1])
            self.result("OK")
        elif command.startswith("AT+V") and self.fclass != 8:
            self._refuse(command, "a voice command outside voice mode (+FCLASS=8)")
        elif command == "AT+VSM=?":
            for line in VSM_LIST:
                self.result(line)
            self.result("OK")
        elif match := _VSM_SET.match(command):
            method = (int(match[1]), int(match[2]))
            if method not in VSM_OFFERED:
                self._refuse(command, "a method or rate +VSM=? did not list")
            else:
                self.method = method
                self.result("OK")
        elif match := _VLS_SET.match(command):
            if int(match[1]) not in VLS_OFFERED:
                self._refuse(command, "a source +VLS does not offer")
            else:
                self.source = int(match[1])
                self.result("OK")
        elif command in ("AT+VCID=0", "AT+VCID=1"):
            self.result("OK")
        elif command == "AT+VRX":
            if self.method is None or self.source is None:
                self._refuse(command, "voice receive before +VSM and +VLS were set")
            else:
                self.receiving = True
                self.result("CONNECT")
        else:
            self.result("ERROR")
