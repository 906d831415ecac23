"""GET / serves the web client, /console the developer console, /web/<file> their files,
/docs Swagger UI from package files."""

from __future__ import annotations

import re

import httpx
import pytest

from chinwag.server.api.web import CONTENT_SECURITY_POLICY, WEB_FILES
from tests.support import RunningServer

MARKUP_SINKS = r"\.(?:inner|outer)HTML\s*\+?=|insertAdjacentHTML|document\.write"


async def test_root_is_the_web_client_page_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/app.js"></script>' in response.text


async def test_console_is_a_page_of_its_own_with_the_same_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/console.js"></script>' in response.text


@pytest.mark.parametrize("path", ["/", "/console"])
async def test_the_page_has_no_inline_script_or_style(client: httpx.AsyncClient, path: str) -> None:
    page = (await client.get(path)).text
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert " style=" not in page
    assert re.findall(r"\bon[a-z]+=", page) == []


async def test_scripts_never_put_data_into_markup(client: httpx.AsyncClient) -> None:
    for name in [n for n in WEB_FILES if n.endswith(".js")]:
        source = (await client.get(f"/web/{name}")).text
        markup = re.findall(MARKUP_SINKS, source)
        assert markup == [], name


async def test_each_web_file_is_served_with_its_type(client: httpx.AsyncClient) -> None:
    types = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
    for name in WEB_FILES:
        response = await client.get(f"/web/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(types[name.rsplit(".", 1)[1]])


async def test_an_unchanged_file_answers_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/web/app.js")
    again = await client.get("/web/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_other_names_are_json_404s(client: httpx.AsyncClient) -> None:
    for path in ("/web/nope.js", "/web/..%2Fapp.py", "/web/__init__.py", "/docs/assets/x.js"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["id"] == "not_found"


async def test_docs_load_swagger_ui_from_this_server(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert "cdn" not in page.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert urls
    assert all(url.startswith("/docs/assets/") for url in urls), urls
    for url in urls:
        assert (await client.get(url)).status_code == 200, url
    assert "'/openapi.json'" in page or '"/openapi.json"' in page


async def test_web_routes_stay_out_of_the_api_document(server: RunningServer) -> None:
    paths = server.app.openapi()["paths"]
    assert not [p for p in paths if not p.startswith("/v1/")]
