"""The chinwag server: api (HTTP/WebSocket edges) → handlers (rules) → storage (SQL)."""

__all__: list[str] = []
