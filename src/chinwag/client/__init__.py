"""The chinwag Python client SDK (asyncio)."""

__all__: list[str] = []
