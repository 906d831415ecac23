"""HTTP edges: parse, authenticate, call a handler, render. Nothing else lives here."""

__all__: list[str] = []
