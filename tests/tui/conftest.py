"""The terminal client runs against a real server, with the client suite's fixtures."""

from tests.client.conftest import app, database_url, make_client, tokens

__all__ = ["app", "database_url", "make_client", "tokens"]
