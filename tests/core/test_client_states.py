"""The SDK lifecycles are tables; every move not in them raises, naming state and event."""

from __future__ import annotations

import pytest

from chinwag.core.client_states import (
    AUTH_TRANSITIONS,
    AuthEvent,
    AuthState,
    ConnectionEvent,
    ConnectionState,
    IllegalTransition,
    next_auth_state,
    next_connection_state,
)


def test_layer_happy_path() -> None:
    state = AuthState.UNAUTHENTICATED
    for event in (AuthEvent.CHALLENGE, AuthEvent.ANSWER, AuthEvent.SUCCEED):
        state = next_auth_state(state, event)
    assert state is AuthState.AUTHENTICATED


def test_challenge_mid_session_then_resume() -> None:
    state = next_auth_state(AuthState.AUTHENTICATED, AuthEvent.CHALLENGE)
    assert state is AuthState.CHALLENGED
    state = next_auth_state(next_auth_state(state, AuthEvent.ANSWER), AuthEvent.SUCCEED)
    assert state is AuthState.AUTHENTICATED


def test_a_second_log_in_while_authenticated_is_illegal() -> None:
    with pytest.raises(IllegalTransition) as info:
        next_auth_state(AuthState.AUTHENTICATED, AuthEvent.ANSWER)
    assert "'answer'" in str(info.value)
    assert "'authenticated'" in str(info.value)
    assert info.value.state is AuthState.AUTHENTICATED
    assert info.value.event is AuthEvent.ANSWER


def test_deauthenticate_then_finish() -> None:
    state = next_auth_state(AuthState.AUTHENTICATED, AuthEvent.DEAUTHENTICATE)
    assert state is AuthState.DEAUTHENTICATING
    with pytest.raises(IllegalTransition):
        next_auth_state(state, AuthEvent.ANSWER)
    assert next_auth_state(state, AuthEvent.FINISH) is AuthState.UNAUTHENTICATED


def test_failed_deauthentication_leaves_the_user_signed_in() -> None:
    assert next_auth_state(AuthState.DEAUTHENTICATING, AuthEvent.FAIL) is AuthState.AUTHENTICATED


def test_failed_upgrade_keeps_the_anonymous_session() -> None:
    state = next_auth_state(AuthState.AUTHENTICATED, AuthEvent.UPGRADE)
    assert next_auth_state(state, AuthEvent.FAIL) is AuthState.AUTHENTICATED


@pytest.mark.parametrize("state", [AuthState.CHALLENGED, AuthState.AUTHENTICATING])
def test_provider_stop_signs_out(state: AuthState) -> None:
    assert next_auth_state(state, AuthEvent.STOP) is AuthState.UNAUTHENTICATED


def test_revocation_reaches_every_signed_in_state() -> None:
    for state in (AuthState.AUTHENTICATED, AuthState.CHALLENGED, AuthState.AUTHENTICATING):
        assert next_auth_state(state, AuthEvent.REVOKE) is AuthState.UNAUTHENTICATED


def test_every_table_entry_is_a_known_pair() -> None:
    for (state, event), target in AUTH_TRANSITIONS.items():
        assert isinstance(state, AuthState)
        assert isinstance(event, AuthEvent)
        assert isinstance(target, AuthState)


def test_connection_retries_go_through_waiting() -> None:
    state = next_connection_state(ConnectionState.DISCONNECTED, ConnectionEvent.CONNECT)
    state = next_connection_state(state, ConnectionEvent.OPEN)
    state = next_connection_state(state, ConnectionEvent.LOSE)
    assert state is ConnectionState.WAITING
    assert next_connection_state(state, ConnectionEvent.RETRY) is ConnectionState.CONNECTING


def test_connection_cannot_retry_when_not_waiting() -> None:
    with pytest.raises(IllegalTransition, match="connection: event 'retry'"):
        next_connection_state(ConnectionState.CONNECTED, ConnectionEvent.RETRY)
