"""The pure core: rules with no I/O. Time and randomness always arrive as arguments."""

__all__: list[str] = []
