"""chinwag: self-hostable chat with bring-your-own-identity authentication."""

__all__ = ["__version__"]

__version__ = "0.1.0"
