"""The SDK lifecycles are tables; every move not in them raises, naming state and event."""

from __future__ import annotations

import pytest

from chinwag.core.client_states import (
    AUTH_TRANSITIONS,
    AuthEvent,
    AuthState,
    ConnectionEvent,
    ConnectionState,
    Effects,
    IllegalTransition,
    LocalData,
    OutboxRule,
    auth_transition,
    next_auth_state,
    next_connection_state,
)


def test_layer_happy_path() -> None:
    state = AuthState.UNAUTHENTICATED
    for event in (AuthEvent.CHALLENGE, AuthEvent.ANSWER, AuthEvent.SUCCEED):
        state = next_auth_state(state, event)
    assert state is AuthState.AUTHENTICATED


@pytest.mark.parametrize("ending", [AuthEvent.EXPIRE, AuthEvent.REVOKE])
def test_expiry_and_revocation_ask_the_provider_and_keep_the_data(ending: AuthEvent) -> None:
    state, effects = auth_transition(AuthState.AUTHENTICATED, ending)
    assert state is AuthState.REAUTHENTICATING
    assert effects.ask_provider
    assert effects.needs_refresh
    assert effects.local_data is LocalData.KEEP
    assert effects.outbox is OutboxRule.WAITS
    assert effects.deauthenticated is None
    state, effects = auth_transition(state, AuthEvent.SUCCEED)
    assert (state, effects.local_data) == (AuthState.AUTHENTICATED, LocalData.KEEP)


@pytest.mark.parametrize(
    "state", [AuthState.AUTHENTICATED, AuthState.REFRESHING, AuthState.REAUTHENTICATING]
)
def test_a_wipe_signs_out_at_once_without_the_provider(state: AuthState) -> None:
    target, effects = auth_transition(state, AuthEvent.WIPE)
    assert target is AuthState.UNAUTHENTICATED
    assert not effects.ask_provider
    assert effects.local_data is LocalData.WIPE
    assert effects.outbox is OutboxRule.DISCARDED
    assert effects.deauthenticated == "wiped"


@pytest.mark.parametrize(
    "state",
    [
        AuthState.CHALLENGED,
        AuthState.AUTHENTICATING,
        AuthState.REFRESHING,
        AuthState.REAUTHENTICATING,
    ],
)
def test_provider_stop_signs_out_and_wipes(state: AuthState) -> None:
    target, effects = auth_transition(state, AuthEvent.STOP)
    assert target is AuthState.UNAUTHENTICATED
    assert effects.local_data is LocalData.WIPE
    assert effects.outbox is OutboxRule.DISCARDED
    assert effects.deauthenticated == "stopped"


def test_a_renewal_that_gives_up_keeps_the_user_and_asks_again_later() -> None:
    state, effects = auth_transition(AuthState.REAUTHENTICATING, AuthEvent.GIVE_UP)
    assert state is AuthState.REAUTHENTICATING
    assert effects.local_data is LocalData.KEEP
    assert effects.outbox is OutboxRule.WAITS


def test_a_renewal_for_another_user_wipes_the_previous_users_data() -> None:
    state, effects = auth_transition(AuthState.REAUTHENTICATING, AuthEvent.SWITCH)
    assert state is AuthState.AUTHENTICATED
    assert effects.local_data is LocalData.WIPE_PREVIOUS


def test_a_refresh_keeps_the_old_session_until_the_new_one_lands() -> None:
    state, effects = auth_transition(AuthState.AUTHENTICATED, AuthEvent.REFRESH)
    assert state is AuthState.REFRESHING
    assert effects.ask_provider
    assert effects.needs_refresh
    assert effects.outbox is OutboxRule.RUNS
    assert next_auth_state(state, AuthEvent.GIVE_UP) is AuthState.AUTHENTICATED
    assert next_auth_state(state, AuthEvent.SUCCEED) is AuthState.AUTHENTICATED
    assert next_auth_state(state, AuthEvent.EXPIRE) is AuthState.REAUTHENTICATING


@pytest.mark.parametrize("ending", [AuthEvent.EXPIRE, AuthEvent.REVOKE, AuthEvent.WIPE])
def test_endings_of_a_session_no_longer_held_change_nothing(ending: AuthEvent) -> None:
    assert auth_transition(AuthState.UNAUTHENTICATED, ending) == (
        AuthState.UNAUTHENTICATED,
        Effects(),
    )
    # our own log-out's echo (close 4003, session.revoked) while leaving
    assert next_auth_state(AuthState.DEAUTHENTICATING, ending) is AuthState.DEAUTHENTICATING


def test_signing_out_wipes_after_the_server_agreed() -> None:
    state = next_auth_state(AuthState.AUTHENTICATED, AuthEvent.DEAUTHENTICATE)
    state, effects = auth_transition(state, AuthEvent.FINISH)
    assert state is AuthState.UNAUTHENTICATED
    assert effects.local_data is LocalData.WIPE
    assert effects.deauthenticated == "deauthenticated"


@pytest.mark.parametrize(
    "state", [AuthState.AUTHENTICATED, AuthState.REFRESHING, AuthState.REAUTHENTICATING]
)
def test_a_suspension_holds_data_and_queue_until_the_app_signs_in_again(state: AuthState) -> None:
    target, effects = auth_transition(state, AuthEvent.SUSPEND)
    assert target is AuthState.SUSPENDED
    assert not effects.ask_provider
    assert effects.local_data is LocalData.KEEP
    assert effects.outbox is OutboxRule.HELD
    assert effects.deauthenticated == "suspended"
    for ending in (AuthEvent.EXPIRE, AuthEvent.REVOKE, AuthEvent.SUSPEND):
        assert auth_transition(target, ending) == (AuthState.SUSPENDED, Effects())
    again, effects = auth_transition(target, AuthEvent.CHALLENGE)  # authenticate()
    assert (again, effects.ask_provider, effects.local_data) == (
        AuthState.REAUTHENTICATING,
        True,
        LocalData.KEEP,
    )


def test_a_second_log_in_while_authenticated_is_illegal() -> None:
    with pytest.raises(IllegalTransition) as info:
        next_auth_state(AuthState.AUTHENTICATED, AuthEvent.ANSWER)
    assert "'answer'" in str(info.value)
    assert "'authenticated'" in str(info.value)
    assert info.value.state is AuthState.AUTHENTICATED
    assert info.value.event is AuthEvent.ANSWER


def test_failed_deauthentication_leaves_the_user_signed_in() -> None:
    assert next_auth_state(AuthState.DEAUTHENTICATING, AuthEvent.FAIL) is AuthState.AUTHENTICATED


def test_failed_upgrade_keeps_the_anonymous_session() -> None:
    state = next_auth_state(AuthState.AUTHENTICATED, AuthEvent.UPGRADE)
    assert next_auth_state(state, AuthEvent.FAIL) is AuthState.UPGRADING
    assert next_auth_state(state, AuthEvent.GIVE_UP) is AuthState.AUTHENTICATED


def test_only_a_first_sign_in_that_gives_up_ends_unauthenticated() -> None:
    state = next_auth_state(AuthState.UNAUTHENTICATED, AuthEvent.CHALLENGE)
    state = next_auth_state(next_auth_state(state, AuthEvent.ANSWER), AuthEvent.FAIL)
    assert state is AuthState.CHALLENGED
    state, effects = auth_transition(state, AuthEvent.GIVE_UP)
    assert state is AuthState.UNAUTHENTICATED
    assert effects.deauthenticated is None


def test_every_table_entry_is_a_known_pair() -> None:
    for (state, event), (target, effects) in AUTH_TRANSITIONS.items():
        assert isinstance(state, AuthState)
        assert isinstance(event, AuthEvent)
        assert isinstance(target, AuthState)
        assert isinstance(effects, Effects)
        if effects.local_data is LocalData.WIPE:
            assert target is AuthState.UNAUTHENTICATED, (state, event)


def test_every_signed_in_state_has_a_row_for_every_ending() -> None:
    signed_in = {AuthState.AUTHENTICATED, AuthState.REFRESHING, AuthState.REAUTHENTICATING}
    for state in signed_in | {AuthState.UPGRADING, AuthState.DEAUTHENTICATING}:
        for ending in (AuthEvent.EXPIRE, AuthEvent.REVOKE, AuthEvent.WIPE):
            auth_transition(state, ending)  # raises if the table forgot one


def test_connection_retries_go_through_waiting() -> None:
    state = next_connection_state(ConnectionState.DISCONNECTED, ConnectionEvent.CONNECT)
    state = next_connection_state(state, ConnectionEvent.OPEN)
    state = next_connection_state(state, ConnectionEvent.LOSE)
    assert state is ConnectionState.WAITING
    assert next_connection_state(state, ConnectionEvent.RETRY) is ConnectionState.CONNECTING


def test_connection_cannot_retry_when_not_waiting() -> None:
    with pytest.raises(IllegalTransition, match="connection: event 'retry'"):
        next_connection_state(ConnectionState.CONNECTED, ConnectionEvent.RETRY)
