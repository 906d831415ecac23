"""The typing-indicator table: device updates, silence, and what gets announced."""

from __future__ import annotations

import pytest

from chinwag.core.typing import (
    TYPING_TRANSITIONS,
    IllegalTypingTransition,
    TypingInput,
    TypingState,
    Typist,
    apply_silence,
    apply_update,
    silence_due,
)

PAUSE, FINISH = 2.5, 5.0


def test_first_started_is_announced() -> None:
    typist, announce = apply_update(None, TypingState.STARTED, now=10.0)
    assert typist == Typist(TypingState.STARTED, 10.0)
    assert announce


def test_repeated_started_refreshes_without_announcing() -> None:
    typist, _ = apply_update(None, TypingState.STARTED, now=10.0)
    again, announce = apply_update(typist, TypingState.STARTED, now=12.0)
    assert again == Typist(TypingState.STARTED, 12.0)
    assert not announce


def test_finished_from_nothing_is_not_announced() -> None:
    typist, announce = apply_update(None, TypingState.FINISHED, now=1.0)
    assert typist.state is TypingState.FINISHED
    assert not announce


@pytest.mark.parametrize("state", list(TypingState))
@pytest.mark.parametrize("requested", list(TypingState))
def test_devices_may_move_from_any_state_to_any_state(
    state: TypingState, requested: TypingState
) -> None:
    typist, announce = apply_update(Typist(state, 0.0), requested, now=1.0)
    assert typist.state is requested
    assert announce == (state is not requested)


def test_silence_pauses_then_finishes_on_schedule() -> None:
    typist = Typist(TypingState.STARTED, 100.0)
    assert apply_silence(typist, now=102.4, pause_after=PAUSE, finish_after=FINISH) is None
    paused = apply_silence(typist, now=102.5, pause_after=PAUSE, finish_after=FINISH)
    assert paused == Typist(TypingState.PAUSED, 102.5)
    assert apply_silence(paused, now=107.4, pause_after=PAUSE, finish_after=FINISH) is None
    finished = apply_silence(paused, now=107.5, pause_after=PAUSE, finish_after=FINISH)
    assert finished == Typist(TypingState.FINISHED, 107.5)
    assert apply_silence(finished, now=1e9, pause_after=PAUSE, finish_after=FINISH) is None


def test_a_late_sweep_keeps_the_schedule_of_the_first_step() -> None:
    typist = Typist(TypingState.STARTED, 0.0)
    paused = apply_silence(typist, now=50.0, pause_after=PAUSE, finish_after=FINISH)
    assert paused == Typist(TypingState.PAUSED, 2.5)
    assert silence_due(paused, pause_after=PAUSE, finish_after=FINISH) == 7.5


def test_silence_on_finished_is_illegal_in_the_table() -> None:
    assert (TypingState.FINISHED, TypingInput.SILENCE) not in TYPING_TRANSITIONS
    error = IllegalTypingTransition(TypingState.FINISHED, TypingInput.SILENCE)
    assert str(error) == "typing: input 'silence' is not allowed in state 'finished'"
