"""The platform API: /v1/platform/..., called by the app's own servers with an API key."""
