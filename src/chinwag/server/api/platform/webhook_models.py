"""Request and response bodies of the platform API's webhook and push endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chinwag.server.api.platform.models import not_null

__all__ = [
    "Delivery",
    "DeliveryPage",
    "NewPushGateway",
    "NewWebhook",
    "PushGateway",
    "PushGatewayIn",
    "PushTokenIn",
    "Webhook",
    "WebhookIn",
    "WebhookList",
    "WebhookPatch",
    "WebhookWithSecret",
]


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://example.com/chinwag", "event_types": ["message.created"]}]
        },
    )

    url: str = Field(max_length=2048)
    event_types: list[str] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=200)
    enabled: bool = True


class WebhookPatch(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", json_schema_extra={"examples": [{"enabled": True}]}
    )

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=20)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None

    _no_null = not_null("url", "event_types", "description", "enabled")


class Webhook(BaseModel):
    id: str
    app_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why chinwag disabled it, if it did.")
    previous_secret_expires_at: float | None = Field(
        description="Until then deliveries are signed with the previous secret too."
    )
    created_at: float
    updated_at: float


class WebhookWithSecret(Webhook):
    secret: str = Field(description="`whsec_…`: shown only in this answer.")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: str
    webhook_id: str = Field(description="The `webhook-id` header: the same on every retry.")
    endpoint_id: str
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: float | None
    last_status: int | None = Field(description="The HTTP status of the last attempt.")
    last_error: str | None
    created_at: float
    delivered_at: float | None


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    next_before: str | None = Field(description="Pass as `before` for older deliveries.")


class PushGatewayIn(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://push.example.com/notify"}]},
    )

    url: str = Field(max_length=2048)
    include_body: bool = Field(
        default=False, description="Send message parts in notifications (off: metadata only)."
    )
    enabled: bool = True


class PushGateway(BaseModel):
    app_id: str
    url: str
    include_body: bool
    enabled: bool
    disabled_reason: str | None
    previous_secret_expires_at: float | None
    created_at: float
    updated_at: float


class NewPushGateway(PushGateway):
    secret: str | None = Field(description="`whsec_…`: only when the gateway is new or rotated.")


class NewWebhook(WebhookWithSecret):
    """Alias kept for the OpenAPI name of a just-created endpoint."""


class PushTokenIn(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "apns", "token": "f0e1d2c3…"}]},
    )

    kind: str = Field(min_length=1, max_length=32, description="e.g. apns, fcm, webpush")
    token: str = Field(min_length=1, max_length=4096)
