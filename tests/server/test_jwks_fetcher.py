"""The JWKS fetcher alone, against real endpoints on loopback: what it refuses and why."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chinwag.core.keys import Alg, generate_key_pair
from chinwag.core.target_urls import address_allowed
from chinwag.server.jwks import JwksFetcher, JwksFetchError
from tests.support import free_port, jwk_for, run_asgi

Send = Callable[[dict[str, Any]], Awaitable[None]]
DOCUMENT = json.dumps({"keys": [jwk_for(generate_key_pair(Alg.ES256), "k1")]}).encode()


def answering(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _fetcher() -> JwksFetcher:
    return JwksFetcher(allow_insecure=True, timeout=2.0, max_bytes=64 * 1024)


async def test_a_good_set_is_read_with_its_lifetime() -> None:
    headers = [(b"cache-control", b"max-age=600")]
    async with run_asgi(answering(200, DOCUMENT, headers)) as url:
        fetcher = _fetcher()
        try:
            fetched = await fetcher.fetch(url + "/jwks")
        finally:
            await fetcher.close()
    assert list(fetched.keys.keys) == ["k1"]
    assert fetched.max_age == 600


@pytest.mark.parametrize(
    ("status", "body", "headers", "problem"),
    [
        (200, gzip.compress(DOCUMENT), [(b"content-encoding", b"gzip")], "gzip-encoded"),
        (200, b"{}", [(b"content-length", b"999999")], "over 65536 bytes"),
        (200, b"<html>hello</html>", [], "not a strict UTF-8 JSON object"),
        (404, b"", [], "answered 404"),
        (301, b"", [(b"location", b"https://example.com/")], "redirected (301)"),
    ],
)
async def test_unusable_answers_are_refused_with_the_reason(
    status: int, body: bytes, headers: list[tuple[bytes, bytes]], problem: str
) -> None:
    async with run_asgi(answering(status, body, headers)) as url:
        fetcher = _fetcher()
        try:
            with pytest.raises(JwksFetchError, match=re.escape(problem)):
                await fetcher.fetch(url + "/jwks")
        finally:
            await fetcher.close()


async def test_nothing_listening_is_a_fetch_error() -> None:
    fetcher = _fetcher()
    try:
        with pytest.raises(JwksFetchError, match="request failed"):
            await fetcher.fetch(f"http://127.0.0.1:{free_port()}/jwks")
    finally:
        await fetcher.close()


async def test_the_url_rule_is_checked_again_before_each_fetch() -> None:
    fetcher = JwksFetcher(allow_insecure=False, timeout=2.0, max_bytes=64 * 1024)
    with pytest.raises(JwksFetchError, match="https://"):
        await fetcher.fetch("http://127.0.0.1:9/jwks")
    await fetcher.close()


async def test_a_name_is_resolved_and_the_endpoint_still_sees_it_as_the_host() -> None:
    """``localhost`` is a name, so the fetch resolves it and connects to the address it
    gives; the request still says which host it is for."""
    hosts: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        hosts.extend(value for name, value in scope["headers"] if name == b"host")
        await answering(200, DOCUMENT, [])(scope, receive, send)

    async with run_asgi(app) as url:
        port = url.rsplit(":", 1)[1]
        fetcher = _fetcher()
        try:
            fetched = await fetcher.fetch(f"http://localhost:{port}/jwks")
        finally:
            await fetcher.close()
    assert list(fetched.keys.keys) == ["k1"]
    assert hosts == [f"localhost:{port}".encode()]


async def test_cookies_an_endpoint_sets_are_not_sent_back() -> None:
    """One client serves every app's set: what one endpoint sets must not reach another."""
    cookies: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        cookies.extend(value for name, value in scope["headers"] if name == b"cookie")
        await answering(200, DOCUMENT, [(b"set-cookie", b"seen=1; Path=/")])(scope, receive, send)

    async with run_asgi(app) as url:
        fetcher = _fetcher()
        try:
            await fetcher.fetch(url + "/jwks")
            await fetcher.fetch(url + "/jwks")
        finally:
            await fetcher.close()
    assert cookies == []


def _self_signed(folder: Path, name: str) -> ssl.SSLContext:
    """A server TLS context with a certificate for ``name`` that no client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


async def test_tls_is_opened_for_the_name_not_the_address(tmp_path: Path) -> None:
    """The connection goes to the resolved address, but TLS asks for (SNI) and checks the
    certificate against the name in the URL, as if the name had been connected to."""
    context = _self_signed(tmp_path, "localhost")
    asked: list[str | None] = []
    context.sni_callback = lambda _sock, name, _context: asked.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    fetcher = _fetcher()
    try:
        # The certificate is self-signed, so the handshake fails, after the server saw SNI.
        with pytest.raises(JwksFetchError, match="request failed"):
            await fetcher.fetch(f"https://localhost:{port}/jwks")
    finally:
        await fetcher.close()
        server.close()
        await server.wait_closed()
    assert asked == ["localhost"]


def _names_only_this_machine(host: str) -> bool:
    try:
        found = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(str(sockaddr[0]).partition("%")[0]) for *_, sockaddr in found}
    return not any(address_allowed(a, allow_loopback=False) for a in addresses)


async def test_a_name_resolving_to_no_public_address_is_refused_before_connecting() -> None:
    """The machine's own host name passes the URL rule (it is no IP literal and not
    ``localhost``) but resolves to loopback or a private address: fetching it would let an
    app probe the operator's network, so it is refused without a connection."""
    host = socket.gethostname()
    if not _names_only_this_machine(host):
        pytest.skip(
            f"this machine's host name {host!r} does not resolve, or resolves to a public address"
        )
    fetcher = JwksFetcher(allow_insecure=False, timeout=2.0, max_bytes=64 * 1024)
    try:
        # Nothing listens on the port: a connection attempt would fail as "request failed".
        with pytest.raises(JwksFetchError, match="does not resolve to a public address"):
            await fetcher.fetch(f"https://{host}:{free_port()}/jwks")
    finally:
        await fetcher.close()


async def test_with_the_development_flag_the_refusal_names_loopback_too() -> None:
    """The refusal reads the same whether the name resolved to nothing or to a private
    address (it must not tell an app which internal names exist); with the development
    flag on it says loopback would do, or it reads as if the flag were ignored.
    ``.invalid`` never resolves (RFC 6761)."""
    fetcher = JwksFetcher(allow_insecure=True, timeout=2.0, max_bytes=64 * 1024)
    try:
        with pytest.raises(JwksFetchError) as refused:
            await fetcher.fetch("https://nothing.invalid/jwks")
        assert str(refused.value) == (
            "nothing.invalid does not resolve to a public or loopback address"
        )
    finally:
        await fetcher.close()
