"""The Redis broker behind a password, an ACL user and TLS (``rediss://``), each on a
redis-server of the test's own."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chinwag.server.broker import Broker, Doorbell, StreamsAdvanced, open_broker
from tests.redis_server import redis_server
from tests.support import free_port

pytestmark = pytest.mark.redis

DOORBELL = StreamsAdvanced(((7, 3),))


async def _pair(url: str) -> tuple[Broker, Broker, asyncio.Queue[Doorbell]]:
    sender = open_broker(url, prefix="chinwag", deployment_id="dep")
    receiver = open_broker(url, prefix="chinwag", deployment_id="dep")
    heard: asyncio.Queue[Doorbell] = asyncio.Queue()
    await sender.start(lambda _: None)
    await receiver.start(heard.put_nowait)
    return sender, receiver, heard


async def _rings(url: str, wait: float = 5) -> bool:
    """Whether a doorbell published by one node through ``url`` reaches another (both
    connected within ``wait`` seconds)."""
    sender, receiver, heard = await _pair(url)
    try:
        async with asyncio.timeout(wait):
            while not (sender.connected and receiver.connected):
                await asyncio.sleep(0.01)
        sender.publish(DOORBELL)
        return await asyncio.wait_for(heard.get(), 5) == DOORBELL
    except TimeoutError:
        return False
    finally:
        await sender.close()
        await receiver.close()


async def test_a_password_in_the_url_authenticates_and_never_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path, "--requirepass", "s3cret-pass") as redis:
        port = redis.port
        caplog.set_level(logging.DEBUG, logger="chinwag")
        assert await _rings(f"redis://:s3cret-pass@127.0.0.1:{port}/0")
        assert not await _rings(f"redis://:wrong-pass@127.0.0.1:{port}/0", wait=2)
        assert not await _rings(f"redis://127.0.0.1:{port}/0", wait=2)
    assert "Redis unreachable" in caplog.text
    assert "pass" not in caplog.text.replace("passw", "")  # neither password, in any record


async def test_an_acl_user_confined_to_the_prefix_can_ring_and_nothing_else(
    tmp_path: Path,
) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text(
        "user default off\n"
        "user chinwag on >node-pass resetchannels &chinwag:* "
        "+subscribe +publish +ping +client|setname\n"
    )
    with redis_server(tmp_path, "--aclfile", str(acl)) as redis:
        assert await _rings(f"redis://chinwag:node-pass@127.0.0.1:{redis.port}/0")
        assert not await _rings(f"redis://chinwag:other@127.0.0.1:{redis.port}/0", wait=2)


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chinwag test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_rediss_urls_speak_tls_and_verify_the_server(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert)]
    tls += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
    with redis_server(tmp_path, *tls, "--requirepass", "tls-pass"):
        base = f"rediss://:tls-pass@127.0.0.1:{tls_port}/0"
        assert await _rings(f"{base}?ssl_ca_certs={ca}")
        assert not await _rings(base, wait=2)  # the system's CAs do not know this server


async def test_an_acl_without_the_channel_polls_the_store_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A user whose ACL leaves out chinwag's channel: Redis refuses the SUBSCRIBE. The
    receiver used to retry at once, forever (191 warnings and not one store poll in 2 s),
    so the node neither heard doorbells nor read the store in their place."""
    from chinwag.server.broker import Resync
    from chinwag.server.broker.redis import RedisBroker

    acl = tmp_path / "users.acl"
    acl.write_text(
        "user default off\n"
        "user chinwag on >node-pass resetchannels &elsewhere:* "
        "+subscribe +publish +ping +client|setname\n"
    )
    caplog.set_level(logging.WARNING, logger="chinwag.server.broker.redis")
    with redis_server(tmp_path, "--aclfile", str(acl)) as redis:
        url = f"redis://chinwag:node-pass@127.0.0.1:{redis.port}/0"
        node = open_broker(url, prefix="chinwag", deployment_id="dep")
        assert isinstance(node, RedisBroker)
        node.poll_interval = 0.05
        heard: asyncio.Queue[Doorbell] = asyncio.Queue()
        await node.start(heard.put_nowait)
        try:
            for _ in range(10):
                assert await asyncio.wait_for(heard.get(), 5) == Resync()
            assert not node.connected
        finally:
            await node.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "permission" in warnings[0]
