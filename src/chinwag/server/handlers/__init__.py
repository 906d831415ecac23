"""The rules, one module per domain. No HTTP here: handlers take Services and plain values."""

__all__: list[str] = []
