"""docs/deploy/nginx.conf, run as it is written, in front of two ``chinwag serve`` nodes
on one PostgreSQL database and one Redis.

Through nginx: sign-in (nonce from one node, session from the other: nginx alternates),
a message sent over the WebSocket reaching a device whose two sockets nginx put on the
two nodes, X-Forwarded-For believed only from the trusted proxy, and a JSON 503 when no
node answers. nginx runs as the test's user in a directory of its own on a free port
(Debian's package: ``apt-get install nginx``; scripts/system-packages installs it). The
sample's timeouts are also held to chinwag's own (ping interval, shutdown bound, the SDK's
timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from chinwag.cli.runner import run_action
from chinwag.client.connection import Api
from chinwag.server.settings import Settings
from tests.support import (
    AppFixture,
    ServerProcess,
    free_port,
    login,
    make_app,
    postgres_database,
    serve_nodes,
)

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"
REDIS_URL = "redis://127.0.0.1:6379/0"
AUTH_BURST = 20
"""Sign-in requests per client address in the (days-long) window these nodes run with."""


def _seconds(sample: str, location: str, directive: str) -> float:
    """``directive``'s value in seconds (``30s``) inside ``location { … }`` (no nesting)."""
    block = sample.split(f"    {location} {{\n", 1)[1].split("\n    }", 1)[0]
    found = re.search(rf"^\s*{directive} (\d+)s;", block, re.MULTILINE)
    assert found, f"{directive} missing from {location}: update this test"
    return float(found.group(1))


def test_the_sample_s_timeouts_fit_chinwag_s_own() -> None:
    """The WebSocket location must outlast the node's ping interval (or nginx cuts healthy
    idle sockets); the REST one must outlast a draining node's in-flight requests and end
    before the SDK's own timeout, so a request nginx retries on another node still
    answers in time (a frozen node stalled clients for 75 s before)."""
    sample, settings = SAMPLE.read_text(), Settings()
    ws = _seconds(sample, "location = /v1/websocket", "proxy_read_timeout")
    assert ws >= settings.ws_ping_interval + 5
    rest = _seconds(sample, "location /", "proxy_read_timeout")
    sdk = inspect.signature(Api).parameters["timeout"].default
    assert settings.shutdown_timeout < rest <= sdk / 2
    assert re.search(r"^ +proxy_next_upstream error timeout http_503;$", sample, re.MULTILINE)
    assert "non_idempotent" not in sample.replace("`non_idempotent`", "")


def render(sample: str, listen: int, nodes: list[ServerProcess]) -> str:
    """The sample with this test's listen port and node addresses, nothing else changed."""
    text, found = re.subn(r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{listen};", sample)
    assert found == 1, "the sample's listen line moved: update this test"
    for n, node in enumerate(nodes):
        address = node.url.removeprefix("http://")
        text, found = re.subn(rf"server 127\.0\.0\.1:800{n + 1}\b", f"server {address}", text)
        assert found == 1, f"the sample's upstream server {n + 1} moved: update this test"
    return text


def main_config(root: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf provides around conf.d/, in ``root``."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}
worker_processes 1;  # one worker: upstreams taken strictly in turn
pid {root / "nginx.pid"};
error_log {root / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {root / "access.log"};
{temp}
    include {root / "chinwag.conf"};
}}
"""


class Nginx:
    """nginx with the sample in front of some nodes, in ``root``, as the test's user."""

    def __init__(self, root: Path) -> None:
        assert NGINX is not None
        self.root = root
        self.args = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", "stderr"]
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, nodes: list[ServerProcess]) -> str:
        """Check the configuration (``nginx -t``), start, wait until it answers; its URL."""
        port = free_port()
        (self.root / "chinwag.conf").write_text(render(SAMPLE.read_text(), port, nodes))
        (self.root / "nginx.conf").write_text(main_config(self.root))
        checked = subprocess.run([*self.args, "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        with (self.root / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen([*self.args, "-g", "daemon off;"], stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        await _until_answering(url, self.process, self.root / "stderr.log")
        return url

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            await asyncio.to_thread(self.process.wait, 10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()


async def _until_answering(url: str, process: subprocess.Popen[bytes], stderr: Path) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(100):
            if process.poll() is not None:
                raise AssertionError(f"nginx exited: {stderr.read_text(errors='replace')}")
            with contextlib.suppress(httpx.TransportError):
                await client.get("/healthz")
                return
            await asyncio.sleep(0.1)
    raise AssertionError("nginx did not answer")


def client_from(url: str, local_address: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``local_address`` (a loopback alias):
    a client address that is neither nginx's nor the other test clients'."""
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30)


async def open_socket(url: str, token: str) -> ClientConnection:
    ws_url = url.replace("http://", "ws://", 1) + "/v1/websocket"
    ws = await connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"
    return ws


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    """The next ``message.created`` event's message (other frames skipped), within 10 s."""
    async with asyncio.timeout(10):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "event" and frame["event"]["type"] == "message.created":
                message: dict[str, Any] = frame["event"]["data"]["message"]
                return message


def accepted_sockets(node: ServerProcess) -> int:
    return node.output.count('"WebSocket /v1/websocket" [accepted]')


async def message_crosses_nodes(url: str, app: AppFixture, nodes: list[ServerProcess]) -> None:
    async with client_from(url, "127.0.0.3") as http:
        alice = (await login(http, app, "alice", time.time()))["session_token"]
        bob = (await login(http, app, "bob", time.time()))["session_token"]
        headers = {"Authorization": f"Bearer {alice}"}
        create = {"participants": ["bob"]}
        conversation = (await http.post("/v1/conversations", json=create, headers=headers)).json()
    # Opened one after the other with nothing between: nginx puts one on each node.
    sockets = [await open_socket(url, bob), await open_socket(url, bob)]
    assert [accepted_sockets(node) for node in nodes] == [1, 1]
    sender = await open_socket(url, alice)
    try:
        sent = {"conversation_id": conversation["id"], "id": str(uuid.uuid4())}
        sent["parts"] = [{"mime_type": "text/plain", "body": "through nginx"}]
        request = {"type": "request", "request_id": "r1", "method": "message.send", "data": sent}
        await sender.send(orjson.dumps(request).decode())
        for ws in sockets:  # one of them is on the node the send did not reach
            assert (await next_message(ws))["id"] == sent["id"]
    finally:
        for ws in [*sockets, sender]:
            await ws.close()


async def counted_addresses(prefix: str) -> set[str]:
    """The client addresses the nodes' sign-in limit counted, read from the shared Redis
    (keys ``<prefix>:<deployment>:limits:auth:address:<address>:<seconds>:<window>``)."""
    admin = aioredis.from_url(REDIS_URL)
    try:
        keys = [key.decode() async for key in admin.scan_iter(f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
    finally:
        await admin.aclose()
    found = (re.search(r":auth:address:(.+):\d+:\d+$", key) for key in keys)
    return {match.group(1) for match in found if match}


async def forwarded_for_only_from_the_proxy(url: str, app: AppFixture, node: ServerProcess) -> None:
    nonce = {"app_id": app.app_id}
    async with client_from(url, "127.0.0.5") as via_nginx:
        for n in range(AUTH_BURST):  # a new made-up address each time: nginx drops them
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert (await via_nginx.post("/v1/nonces", json=nonce, headers=spoofed)).is_success
        refused = await via_nginx.post("/v1/nonces", json=nonce, headers=spoofed)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["id"] == "rate_limited"
    async with client_from(node.url, "127.0.0.6") as untrusted:  # straight to a node
        spoofed = {"X-Forwarded-For": "203.0.113.99"}
        assert (await untrusted.post("/v1/nonces", json=nonce, headers=spoofed)).is_success
    async with client_from(node.url, "127.0.0.1") as trusted:  # from the proxy's address
        forwarded = {"X-Forwarded-For": "198.51.100.4"}
        assert (await trusted.post("/v1/nonces", json=nonce, headers=forwarded)).is_success


async def metrics_stay_inside(url: str) -> None:
    """The proxy answers ``/metrics`` itself: scrapers go to the nodes, never through it."""
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 404
    assert answer.json()["error"] == {"id": "not_found", "message": "Not served here.", "data": {}}


async def nobody_answers(url: str) -> None:
    """With every node down, nginx answers as chinwag would: JSON, 503, Retry-After."""
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/v1/me")
    assert answer.status_code == 503
    assert answer.json()["error"]["id"] == "service_unavailable"
    assert answer.headers["retry-after"] == "2"


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(NGINX is None, reason="needs nginx (apt-get install nginx)")
async def test_two_nodes_behind_the_sample_nginx_config(tmp_path: Path) -> None:
    prefix = f"chinwag_test_{secrets.token_hex(6)}"
    env = {
        "CHINWAG_BROKER_URL": REDIS_URL,
        "CHINWAG_BROKER_PREFIX": prefix,
        "CHINWAG_TRUSTED_PROXIES": "127.0.0.1",  # nginx connects to the nodes from here
        "CHINWAG_AUTH_RATE_PER_SECOND": "0.0001",
        "CHINWAG_AUTH_RATE_BURST": str(AUTH_BURST),
    }
    nginx = Nginx(tmp_path)
    try:
        async with postgres_database() as database_url:
            settings = Settings(database_url=database_url)
            app = await asyncio.to_thread(run_action, settings, make_app)
            async with serve_nodes(database_url, tmp_path, env=env) as nodes:
                url = await nginx.start(nodes)
                await message_crosses_nodes(url, app, nodes)
                await forwarded_for_only_from_the_proxy(url, app, nodes[0])
                await metrics_stay_inside(url)
            await nobody_answers(url)
    finally:
        await nginx.stop()
    # Through nginx the client's own address; straight from a client, the peer's; from the
    # trusted proxy's address, what X-Forwarded-For says. Never a made-up 203.0.113.x.
    assert await counted_addresses(prefix) == {
        "127.0.0.3", "127.0.0.5", "127.0.0.6", "198.51.100.4"
    }  # fmt: skip
