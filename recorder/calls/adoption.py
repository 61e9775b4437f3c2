"""A CTI call that began before its SIPREC session: the session's start adopts it.

The CTI often reports a call (CALLSTART) a moment before the SRC's INVITE reaches the
recorder. That CALLSTART finds no channel for the device, so it is tracked and not recorded.
When the device's session then starts, its call is that one: same CALLINSTANCE, GLOBALCALLID
and fields (the session's fill in only what the CTI did not send), its row made from them, the
session's audio recorded into it, and the session's BYE ends it, as for a CTI CALLSTART that
attaches to a session already up (``Scheduler._attach``).
"""

from __future__ import annotations

import dataclasses

from recorder.calls.devices import DeviceState
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallStart
from recorder.capture.core import Channel
from recorder.rules.decision import CallFacts


def early_cti_call(state: DeviceState) -> LiveCall | None:
    """The device's newest open CTI call that no channel records, with its lock taken (under
    the table's lock); None if it has none.

    Only a call whose lock is free is taken (never waiting for it under the table's lock): one
    being changed right now is left alone, and the session gets a call of its own.
    """
    for call in reversed(state.active.values()):
        if call.siprec or call.channel is not None or call.main is not None:
            continue
        if call.stop_time is None and call.lock.acquire(blocking=False):
            return call
        return None
    return None


def adopt(call: LiveCall, start: CallStart, taps: tuple[Channel, ...], position: int
          ) -> CallFacts:
    """Make ``call`` the call of the session ``start`` (recorded from ``taps`` at
    ``position``); the facts to decide on again: its CALLSTART's, with the channel now known."""
    call.siprec = start.siprec
    call.taps = taps
    call.channel = taps[0].id
    call.start_position = position
    call.meta = {**start.meta, **call.meta}  # the CTI's fields win; the session's fill in
    if start.instance and start.instance != call.instance:
        call.aliases.add(start.instance)  # the session's own CALLINSTANCE names it too
    if call.facts is None:  # not made by call_start (a test's call): the session's facts
        return CallFacts.of(start, call.device_id, call.channel, call_key=call.global_id)
    return dataclasses.replace(call.facts, channel_id=call.channel, meta=dict(call.meta))
