"""The typing-indicator table: device updates, silence, and what gets announced."""

from __future__ import annotations

import pytest

from chinwag.core.typing import (
    TYPING_TRANSITIONS,
    IllegalTypingTransition,
    Relay,
    TypingInput,
    TypingState,
    Typist,
    apply_silence,
    apply_update,
    flush_relay,
    offer_relay,
    relay_spent,
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


WINDOW = 0.3


def test_a_change_outside_a_window_is_relayed_at_once() -> None:
    relay, send, flush_at = offer_relay(None, TypingState.STARTED, now=10.0, interval=WINDOW)
    assert (relay, send, flush_at) == (Relay(TypingState.STARTED, 10.0), True, None)


def test_changes_inside_a_window_wait_and_the_latest_wins() -> None:
    relay, _, _ = offer_relay(None, TypingState.STARTED, now=10.0, interval=WINDOW)
    relay, send, flush_at = offer_relay(relay, TypingState.PAUSED, now=10.1, interval=WINDOW)
    assert send is False
    assert flush_at == pytest.approx(10.3)
    relay, send, flush_at = offer_relay(relay, TypingState.FINISHED, now=10.2, interval=WINDOW)
    assert (send, flush_at) == (False, None)  # the flush is already due
    relay, state = flush_relay(relay, interval=WINDOW)
    assert state is TypingState.FINISHED  # never lost
    assert relay == Relay(TypingState.FINISHED, relay.at)
    assert relay.at == pytest.approx(10.3)


def test_a_flush_that_changes_nothing_relays_nothing() -> None:
    relay, _, _ = offer_relay(None, TypingState.STARTED, now=10.0, interval=WINDOW)
    relay, _, _ = offer_relay(relay, TypingState.PAUSED, now=10.1, interval=WINDOW)
    relay, _, _ = offer_relay(relay, TypingState.STARTED, now=10.2, interval=WINDOW)
    relay, state = flush_relay(relay, interval=WINDOW)
    assert state is None
    assert relay == Relay(TypingState.STARTED, 10.0)


def test_ten_thousand_flips_relay_one_change_per_window() -> None:
    relay: Relay | None = None
    relayed, flush_at = 0, None
    for n in range(10_000):
        now = n * 0.00004  # 10,000 changes in 0.4 s
        if flush_at is not None and relay is not None and now >= flush_at:
            relay, state = flush_relay(relay, interval=WINDOW)
            relayed += state is not None
        state = TypingState.STARTED if n % 2 == 0 else TypingState.PAUSED
        relay, send, due = offer_relay(relay, state, now=now, interval=WINDOW)
        relayed += send
        flush_at = due if due is not None else flush_at
    assert relayed <= 3


def test_a_finished_relay_is_forgotten_after_its_window() -> None:
    relay = Relay(TypingState.FINISHED, 10.0)
    assert not relay_spent(relay, now=10.1, interval=WINDOW)
    assert relay_spent(relay, now=10.3, interval=WINDOW)
    assert not relay_spent(Relay(TypingState.STARTED, 10.0), now=99, interval=WINDOW)
    pending = Relay(TypingState.FINISHED, 10.0, TypingState.STARTED)
    assert not relay_spent(pending, now=99, interval=WINDOW)
