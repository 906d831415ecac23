"""The platform API (``/v1/platform/...``): an app's own servers drive chinwag with API keys."""
