"""A sound card as a capture board: one PortAudio input stream, input channel N taps line N.

PortAudio calls ``_Capture.callback`` from its own audio thread with each block; the callback
only copies the block into the sink and does arithmetic (no logging, no blocking locks, no I/O),
as the sounddevice callback contract asks. A supervisor thread (``driver-<key>``) opens the
stream, watches it, and when the device is lost (the stream ends on its own, the callback
aborts, PortAudio errors, or no audio arrives any more) reports ERROR and reopens it with
exponential back-off, reporting RESETTING while it tries and RUNNING once audio flows again.

Lost audio is reported as ``lost_frames`` so the ring keeps matching the clock:

- within a stream, from a jump in PortAudio's ADC time of the blocks (``inputBufferAdcTime``),
  cross-checked against when the blocks really arrived, so a wall-clock step is not a loss;
- across a reopen, the time between the last block of the old stream and the first block of
  the new one.

sounddevice is imported only when a board uses it, so a machine without PortAudio
(``libportaudio2``) can still run every other driver, and one that needs it gets a DriverError
saying which package to install instead of a traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from recorder.drivers.base import DriverSink, DriverState, ThreadedDriver
from recorder.drivers.settings import SoundDeviceBoardConfig
from recorder.errors import DriverError

logger = logging.getLogger(__name__)

DTYPE = "int16"
POLL_SECONDS = 0.05  # how often the supervisor looks at the stream; bounds stop() latency
FIRST_RETRY_SECONDS = 0.5
# A stream that is open but delivers nothing this long is lost (a sound server that hangs
# rather than closing the connection). The first block of a fresh stream can take over a
# second (PulseAudio's ALSA plugin), hence the margin.
STALL_SECONDS = 5.0
# PortAudio's ADC times jitter by about a block (the ALSA pulse plugin derives them from how
# much is buffered); a gap smaller than this is jitter, not loss. Overflows that small are
# still counted, and the core's clock finds whatever this misses.
MIN_GAP_SECONDS = 0.1
MIN_GAP_BLOCKS = 3
# A fresh stream's ADC times settle first: PulseAudio's ALSA plugin starts by reporting ~0.4 s
# of latency it does not have and takes a second or so to converge, so a stall then would look
# like a loss. Gaps are only looked for after this much audio of a stream.
SETTLE_SECONDS = 2.0
OVERFLOW_LOG_SECONDS = 60.0  # at most one overflow warning per minute

# PortAudio is one library-wide state: its device list is only refreshed by terminating and
# re-initialising it, which would kill every open stream. Every PortAudio call of this module
# goes through this lock, and the list is only refreshed while no stream of ours is open.
_PA_LOCK = threading.RLock()
_open_streams = 0


def _portaudio(key: str) -> ModuleType:
    """The sounddevice module, or a DriverError saying what is missing."""
    try:
        import sounddevice  # noqa: PLC0415 - lazily: only boards that use it need PortAudio
    except OSError as exc:
        # sounddevice raises OSError("PortAudio library not found") when libportaudio is absent.
        raise DriverError(
            f"{key}: the sounddevice driver needs the PortAudio library ({exc}); install the "
            "Debian package libportaudio2 (apt-get install libportaudio2)") from exc
    except ImportError as exc:
        raise DriverError(f"{key}: the sounddevice driver needs the Python package sounddevice "
                          f"({exc}); pip install sounddevice") from exc
    module: ModuleType = sounddevice
    return module


def _refresh_devices(sd: ModuleType) -> None:
    """Make PortAudio enumerate the devices again (a sound server or USB card that came back).

    Call with _PA_LOCK held and no stream of ours open. sounddevice's own _terminate and
    _initialize are what its maintainers point to for this; without them the list stays as it
    was when PortAudio started.
    """
    terminate = getattr(sd, "_terminate", None)
    initialize = getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return
    if getattr(sd, "_initialized", 1) > 0:
        terminate()
    initialize()


def _input_devices(sd: ModuleType) -> list[dict[str, Any]]:
    return [dict(d) for d in sd.query_devices() if d["max_input_channels"] > 0]


def _listing(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "no input devices at all (is the sound server running, the card plugged in?)"
    return "input devices: " + ", ".join(
        f"[{d['index']}] {d['name']} ({d['max_input_channels']} in)" for d in devices)


def _find_input_device(sd: ModuleType, key: str, spec: str) -> dict[str, Any]:
    """The PortAudio device ``spec`` names: an index, part of a name, or empty for the default."""
    devices = _input_devices(sd)
    spec = spec.strip()
    if not spec:
        try:
            default = dict(sd.query_devices(kind="input"))
        except (sd.PortAudioError, ValueError) as exc:
            raise DriverError(f"{key}.device: there is no default input device ({exc}); "
                              f"name one; {_listing(devices)}") from exc
        if default["max_input_channels"] <= 0:
            raise DriverError(f"{key}.device: the default device {default['name']!r} has no "
                              f"inputs; name one; {_listing(devices)}")
        return default
    if spec.isdigit():
        found = [d for d in devices if d["index"] == int(spec)]
        if not found:
            raise DriverError(f"{key}.device: no input device has index {spec}; "
                              f"{_listing(devices)}")
        return found[0]
    matches = [d for d in devices if spec.lower() in str(d["name"]).lower()]
    exact = [d for d in matches if str(d["name"]).lower() == spec.lower()]
    if len(exact) == 1:
        return exact[0]
    if not matches:
        raise DriverError(f"{key}.device: no input device matches {spec!r}; "
                          f"{_listing(devices)}")
    if len(matches) > 1:
        raise DriverError(f"{key}.device: {spec!r} matches several input devices; give more "
                          f"of the name or the index; {_listing(matches)}")
    return matches[0]


def _describe(device: dict[str, Any]) -> str:
    return f"input device [{device['index']}] {device['name']!r}"


class _Capture:
    """One open stream's callback and the little state it keeps; nothing else runs there."""

    def __init__(self, sink: DriverSink, rate: int, block_frames: int, abort: type[Exception],
                 *, resume_from: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.rate = rate
        self.abort = abort
        self.clock = clock
        self.gap_threshold = max(MIN_GAP_SECONDS, MIN_GAP_BLOCKS * block_frames / rate)
        self.settle_frames = round(SETTLE_SECONDS * rate)
        self.frames = 0  # delivered by this stream
        # Monotonic time the device went away (end of the last block before a reopen): the
        # first block of this stream reports everything since then as lost.
        self.resume_from = resume_from
        self.blocks = 0
        self.overflows = 0
        self.last_arrival: float | None = None
        self.next_adc = 0.0  # ADC time the next block should start at; 0 = not known
        self.failure: BaseException | None = None
        # Set by PortAudio's finished callback: the stream became inactive, whatever the reason.
        self.finished = threading.Event()

    def callback(self, indata: npt.NDArray[np.int16], frames: int, time_info: Any,
                 status: Any) -> None:
        try:
            now = self.clock()
            lost = 0
            adc = float(time_info.inputBufferAdcTime)
            if self.resume_from is not None:
                lost = max(0, round((now - frames / self.rate - self.resume_from) * self.rate))
                self.resume_from = None
            elif (adc > 0 and self.next_adc > 0 and self.last_arrival is not None
                  and self.frames >= self.settle_frames):
                # A wall-clock step moves the ADC time without any loss; the audio cannot have
                # skipped more than the time that really passed between two callbacks.
                gap = min(adc - self.next_adc, now - self.last_arrival)
                if gap > self.gap_threshold:
                    lost = round(gap * self.rate)
            if status and status.input_overflow:
                self.overflows += 1
            self.sink.audio(indata.copy(), lost)
            # Only a delivered block counts: one the sink refused is part of the time away.
            self.next_adc = adc + frames / self.rate if adc > 0 else 0.0
            self.last_arrival = now
            self.blocks += 1
            self.frames += frames
        except Exception as exc:
            # No logging here (audio thread): keep the error for the supervisor and end the
            # stream, which the supervisor then handles like a lost device.
            self.failure = exc
            raise self.abort from exc


class SoundDeviceDriver(ThreadedDriver):
    """Captures ``config.channels`` input channels of a PortAudio device as int16 blocks."""

    def __init__(self, key: str, config: SoundDeviceBoardConfig) -> None:
        channels = config.channels or len(config.devices)
        super().__init__(key, channels, config.sample_rate)
        self.config = config
        self.block_frames = max(1, config.sample_rate * config.block_ms // 1000)
        self._sd = _portaudio(key)
        with _PA_LOCK:
            try:
                device = _find_input_device(self._sd, key, config.device)
            except DriverError:
                # The list is from when PortAudio started; the device (or the sound server
                # behind it) may have appeared since.
                if _open_streams:
                    raise
                _refresh_devices(self._sd)
                device = _find_input_device(self._sd, key, config.device)
            self.device = device
            if device["max_input_channels"] < channels:
                raise DriverError(
                    f"{key}.channels: {_describe(device)} has {device['max_input_channels']} "
                    f"input channel(s), {channels} configured")
            try:
                self._sd.check_input_settings(device=device["index"], channels=channels,
                                              dtype=DTYPE, samplerate=config.sample_rate)
            except (self._sd.PortAudioError, ValueError) as exc:
                raise DriverError(
                    f"{key}: {_describe(device)} cannot capture {channels} channel(s) of "
                    f"16-bit audio at {config.sample_rate} Hz: {exc}") from exc
        self.overflows = 0  # input overflows PortAudio reported, over every stream

    # The supervisor (ThreadedDriver's thread) closes the stream before it ends, and closing
    # joins PortAudio's audio thread, so join() returning True means every thread has ended.

    # --- supervisor thread ---------------------------------------------------------------

    def _run(self, sink: DriverSink) -> None:
        sd = self._sd
        delay = FIRST_RETRY_SECONDS
        attempt = 0
        away_since: float | None = None  # when the last stream delivered its last block
        while not self._stop.is_set():
            if attempt:
                sink.state(DriverState.RESETTING,
                           f"reopening {self._target()} (attempt {attempt})")
            capture = _Capture(sink, self.sample_rate, self.block_frames, sd.CallbackAbort,
                               resume_from=away_since)
            try:
                stream = self._open(capture, refresh=attempt > 0)
            except (DriverError, sd.PortAudioError, ValueError, OSError) as exc:
                sink.state(DriverState.ERROR, f"cannot open {self._target()}: {exc}")
            else:
                try:
                    reason = self._watch(stream, capture, sink)
                    if reason is not None:
                        # Said before closing: closing a stream whose sound server hangs
                        # can take as long as the server does.
                        sink.state(DriverState.ERROR, reason)
                        if capture.failure is not None:
                            logger.error("%s: the capture callback failed", self.key,
                                         exc_info=capture.failure)
                finally:
                    self._close(stream)
                    self.overflows += capture.overflows
                if reason is None:
                    break
                if capture.last_arrival is not None:
                    away_since = capture.last_arrival
                    delay = FIRST_RETRY_SECONDS  # it ran: back-off starts afresh
            attempt += 1
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.config.reopen_max_seconds)

    def _target(self) -> str:
        return f"{self.config.device!r}" if self.config.device else "the default input device"

    def _open(self, capture: _Capture, refresh: bool) -> Any:
        """Open and start a stream feeding ``capture``; raises if the device is not there."""
        global _open_streams  # noqa: PLW0603 - the one counter of PortAudio's shared state
        sd = self._sd
        with _PA_LOCK:
            if refresh and not _open_streams:
                _refresh_devices(sd)
            device = self.device if not refresh else _find_input_device(sd, self.key,
                                                                        self.config.device)
            if device["max_input_channels"] < self.channels:
                raise DriverError(f"{_describe(device)} has only {device['max_input_channels']} "
                                  f"input channel(s) now, {self.channels} needed")
            stream = sd.InputStream(
                samplerate=self.sample_rate, blocksize=self.block_frames,
                device=device["index"], channels=self.channels, dtype=DTYPE,
                callback=capture.callback, finished_callback=capture.finished.set)
            _open_streams += 1
            try:
                stream.start()
            except BaseException:
                self._close(stream)
                raise
        self.device = device
        logger.info("%s: capturing %d channel(s) at %d Hz from %s", self.key, self.channels,
                    self.sample_rate, _describe(device))
        return stream

    def _close(self, stream: Any) -> None:
        global _open_streams  # noqa: PLW0603 - the one counter of PortAudio's shared state
        with _PA_LOCK:
            try:
                # Closing an active stream aborts it (pending blocks are dropped) and waits for
                # PortAudio's audio thread to end.
                stream.close(ignore_errors=True)
            except Exception:
                logger.exception("%s: closing the input stream failed", self.key)
            finally:
                _open_streams -= 1

    def _watch(self, stream: Any, capture: _Capture, sink: DriverSink) -> str | None:
        """Watch a running stream; None once stop() is asked, else why the device was lost."""
        running = False
        seen = 0
        progress = time.monotonic()
        overflows_logged = 0
        logged_at = 0.0
        while not self._stop.wait(POLL_SECONDS):
            if capture.failure is not None:
                return f"the capture callback failed: {capture.failure!r}"
            if capture.finished.is_set() or not stream.active:
                return (f"the input stream of {_describe(self.device)} stopped: the device "
                        "was lost (unplugged, or its sound server went away)")
            now = time.monotonic()
            if capture.blocks != seen:
                seen, progress = capture.blocks, now
                if not running:
                    running = True
                    sink.state(DriverState.RUNNING, f"capturing from {_describe(self.device)}")
            elif now - progress > STALL_SECONDS:
                return f"no audio from {_describe(self.device)} for {now - progress:.1f} s"
            if capture.overflows > overflows_logged and now - logged_at > OVERFLOW_LOG_SECONDS:
                logger.warning("%s: %d input overflow(s) on %s so far", self.key,
                               self.overflows + capture.overflows, _describe(self.device))
                overflows_logged, logged_at = capture.overflows, now
        return None


__all__ = ["SoundDeviceDriver"]
