"""Channel state: derived from the device, the line and the recordings, with its change time."""

from __future__ import annotations

import pytest

from recorder.capture.channels import STATE_NAMES, ChannelState, ChannelStatus, Phase, derive_state

S = ChannelState
NONE = dict.fromkeys(Phase, 0)


@pytest.mark.parametrize(("fault", "phases", "off_hook", "state"), [
    (None, {}, False, S.ON_HOOK),
    (None, {}, True, S.OFF_HOOK),
    (None, {Phase.PREPARING: 1}, True, S.RECORDING_PREP),
    (None, {Phase.RECORDING: 1, Phase.PREPARING: 1}, False, S.RECORDING),
    (None, {Phase.FINISHING: 1}, False, S.FINISH_RECORDING),
    (None, {Phase.FINISHING: 1, Phase.RECORDING: 2}, False, S.RECORDING),
    (S.ERROR, {Phase.RECORDING: 1}, True, S.ERROR),
    (S.RESETTING, {}, False, S.RESETTING),
])
def test_derived_state(fault: ChannelState | None, phases: dict[Phase, int], off_hook: bool,
                       state: ChannelState) -> None:
    assert derive_state(fault, {**NONE, **phases}, off_hook) is state


def test_the_change_time_moves_only_when_the_state_changes() -> None:
    now = [1000.0]
    status = ChannelStatus(clock=lambda: now[0])
    assert status.snapshot().since == 1000.0
    now[0] = 1005.0
    status.set_hook(False)  # still on hook: no change
    assert status.snapshot().since == 1000.0
    status.enter(Phase.PREPARING)
    now[0] = 1006.0
    status.move(Phase.PREPARING, Phase.RECORDING)
    snap = status.snapshot()
    assert (snap.state, snap.since) == (S.RECORDING, 1006.0)
    now[0] = 1010.0
    status.set_fault(S.ERROR, "device unplugged")
    assert status.snapshot() == type(snap)(S.ERROR, 1010.0, "device unplugged")
    status.set_fault(None)
    assert status.snapshot().state is S.RECORDING
    assert status.snapshot().detail == ""


def test_every_manual_state_has_a_name_in_the_examples_style() -> None:
    assert set(STATE_NAMES) == set(ChannelState)
    assert STATE_NAMES[S.ON_HOOK] == "Idle"
    assert STATE_NAMES[S.RECORDING_PREP] == "PreparingToRecord"
    assert all(" " not in name for name in STATE_NAMES.values())
