"""The chinwag command line: thin Typer commands over the server's handlers."""

__all__: list[str] = []
