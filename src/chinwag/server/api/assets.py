"""Static files shipped inside Python packages (the web client, Swagger UI), served by name.

Only the files named up front are served, read once at start: no path from a URL ever
reaches the file system, so there is nothing to traverse. Each answer carries its own
``ETag`` so browsers revalidate instead of downloading again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response

from chinwag.core.errors import NotFound

__all__ = ["Asset", "PackageAssets"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class PackageAssets:
    """A fixed set of files from one package folder, answered from memory."""

    def __init__(self, folder: Traversable, names: list[str], headers: dict[str, str]) -> None:
        self._headers = headers
        self._assets: dict[str, Asset] = {}
        for name in names:
            body = (folder / name).read_bytes()
            suffix = name[name.rfind(".") :]
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._assets[name] = Asset(body, _TYPES[suffix], etag)

    def answer(self, request: Request, name: str) -> Response:
        """The file called ``name`` (404 ``not_found`` for any other name)."""
        asset = self._assets.get(name)
        if asset is None:
            raise NotFound("No such file.")
        headers = {**self._headers, "ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
