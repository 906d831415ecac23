"""Standard Webhooks signing, checked by the standardwebhooks package itself."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chinwag.core.events import EventType
from chinwag.core.target_urls import url_problem
from chinwag.core.webhook_events import WebhookEventType, next_delay, webhook_type
from chinwag.core.webhook_signing import headers, new_secret


def _secret(byte: int) -> str:
    return new_secret(lambda n: bytes([byte]) * n)


def test_the_standardwebhooks_package_verifies_what_chinwag_signs() -> None:
    secret, body = _secret(7), b'{"type":"message.created","data":{}}'
    signed = headers([secret], "msg_1", time.time(), body)
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(body, signed) == {"type": "message.created", "data": {}}


def test_a_tampered_body_or_another_secret_fails_verification() -> None:
    secret, body = _secret(7), b"{}"
    signed = headers([secret], "msg_1", time.time(), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":1}', signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret(8)).verify(body, signed)


def test_during_rotation_both_secrets_verify_the_same_delivery() -> None:
    old, new, body = _secret(1), _secret(2), b"{}"
    signed = headers([new, old], "msg_1", time.time(), body)
    assert len(signed["webhook-signature"].split(" ")) == 2
    assert all(s.startswith("v1,") for s in signed["webhook-signature"].split(" "))
    Webhook(old).verify(body, signed)
    Webhook(new).verify(body, signed)


def test_the_timestamp_header_is_integer_seconds_of_the_given_time() -> None:
    assert headers([_secret(1)], "m", 1_800_000_000.9, b"")["webhook-timestamp"] == "1800000000"


@pytest.mark.parametrize(
    ("stream", "data", "expected"),
    [
        (EventType.MESSAGE_CREATED, {}, WebhookEventType.MESSAGE_CREATED),
        (EventType.MESSAGE_DELETED, {"mode": "all_participants"}, WebhookEventType.MESSAGE_DELETED),
        (EventType.MESSAGE_DELETED, {"mode": "my_devices"}, None),
        (EventType.PARTICIPANTS_ADDED, {}, None),
        (EventType.CONVERSATION_LEFT, {}, None),
        (EventType.SESSION_REVOKED, {}, WebhookEventType.SESSION_ENDED),
        (EventType.IDENTITY_UPDATED, {}, None),
    ],
)
def test_stream_events_map_to_webhook_events(
    stream: str, data: dict[str, str], expected: WebhookEventType | None
) -> None:
    assert webhook_type(stream, data) == expected


def test_back_off_is_jittered_around_the_schedule_and_ends() -> None:
    schedule = (10.0, 100.0)
    assert next_delay(1, schedule, lambda: 0.0) == pytest.approx(8.0)
    assert next_delay(1, schedule, lambda: 1.0) == pytest.approx(12.0)
    assert next_delay(2, schedule, lambda: 0.5) == pytest.approx(100.0)
    assert next_delay(3, schedule, lambda: 0.5) is None


@pytest.mark.parametrize(
    ("url", "dev", "problem"),
    [
        ("https://example.com/hook", False, None),
        ("http://example.com/hook", True, "expected an https URL"),
        ("http://127.0.0.1:9/hook", False, "development flag"),
        ("http://127.0.0.1:9/hook", True, None),
        ("http://localhost/hook", True, None),
        ("https://user:pw@example.com/", False, "credentials"),
        ("ftp://example.com/", False, "expected an https URL"),
        ("https:///nohost", False, "no host"),
        ("https://example.com:99999/", False, "not a valid URL"),
        (5, False, "expected a URL"),
        ("https://example.com/hook#x", False, "fragment"),
        ("https://example.com/hook#", False, "fragment"),
        ("https://example.com/hook\r\nx-evil: 1", False, "control characters"),
        ("https://example.com/a\tb", False, "control characters"),
        ("https://example.com/a b", False, "control characters"),
        ("https://10.0.0.1/hook", True, "public address"),
        ("https://192.168.1.1/hook", True, "public address"),
        ("https://169.254.169.254/latest", True, "public address"),
        ("https://0.0.0.0/hook", False, "public address"),
        ("https://127.0.0.1/hook", False, "public address"),
        ("https://localhost/hook", False, "public address"),
        ("https://2130706433/hook", False, "public address"),
        ("https://0x7f000001/hook", False, "public address"),
        ("https://127.1/hook", False, "public address"),
        ("https://167772161/hook", True, "public address"),
        ("https://1.2.3.999/hook", False, "not a valid URL"),
        ("https://[::1]/hook", False, "public address"),
        ("https://[::ffff:127.0.0.1]/hook", False, "public address"),
        ("https://[::ffff:10.0.0.1]/hook", True, "public address"),
        ("https://[fe80::1]/hook", True, "public address"),
        ("https://[fd00::1]/hook", True, "public address"),
        ("https://[::]/hook", True, "public address"),
        ("https://[::1]/hook", True, None),
        ("https://8.8.8.8/hook", False, None),
        ("https://[2001:4860::8888]/hook", False, None),
        ("https://hooks.example.com./hook", False, None),
    ],
)
def test_delivery_urls_must_be_public_https_without_credentials(
    url: object, dev: bool, problem: str | None
) -> None:
    found = url_problem(url, allow_loopback=dev)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
