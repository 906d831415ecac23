"""A lean WebSocket load generator for ``bench/fanout.py``: many sockets, little CPU.

One :class:`WsClient` is an :class:`asyncio.Protocol` (no reader task, no stream objects)
speaking just enough RFC 6455 for chinwag: a hand-built upgrade request, unmasked server
frames (text, ping, close, continuation), and client frames masked with the all-zero key
(legal, and it makes masking a no-op). No permessage-deflate is offered.

A worker process (:func:`worker_main`) holds many such sockets on one uvloop and obeys
commands sent over a pipe by the benchmark's main process:

- ``connect``: open authenticated sockets (bounded concurrency), wait for ``hello``.
- ``load``: open-loop ``message.send`` at a fixed rate, round-robin over its pair devices.
- ``fanout``: one device sends one message into the big conversation.
- ``collect`` / ``fanout_times``: hand back what was received (latencies, receive times).
- ``close``: close every socket.

Frames are classified by prefix and a marker in the message body (``L<step>|<t>|<dev>`` for
the 1:1 load, ``G<k>|<t>`` for fan-out) instead of being parsed: only the timestamp is read.
All times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process on the
machine), so a send in one worker and a delivery in another are comparable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import resource
import struct
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

import orjson

__all__ = ["Device", "WsClient", "raise_nofile_limit", "worker_main"]

_EVENT = b'{"type":"event"'
_RESPONSE = b'{"type":"response"'
_HELLO = b'{"type":"hello"'
_BODY = b'"body":"'
_OK_FALSE = b'"ok":false'


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (children inherit it); returns the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def encode_text(payload: bytes) -> bytes:
    """A client text frame: FIN, opcode 1, mask bit with the all-zero key."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def _control(opcode: int, payload: bytes) -> bytes:
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + b"\x00\x00\x00\x00" + payload


@dataclass(slots=True)
class Device:
    """One device of the benchmark: its global index, session token and 1:1 conversation."""

    index: int
    token: str
    conversation_id: str | None = None


class Recorder:
    """What one worker saw: latencies per load step, receive times per fan-out message."""

    def __init__(self) -> None:
        self.delivered: defaultdict[int, list[float]] = defaultdict(list)
        self.acked: defaultdict[int, list[float]] = defaultdict(list)
        self.errors: defaultdict[int, int] = defaultdict(int)
        self.last_delivery: defaultdict[int, float] = defaultdict(float)
        self.fanout: defaultdict[int, list[float]] = defaultdict(list)
        self.closed: list[int] = []

    def frame(self, client: WsClient, payload: bytes, now: float) -> None:
        if payload.startswith(_EVENT):
            at = payload.find(_BODY)
            if at < 0:
                return
            at += len(_BODY)
            kind = payload[at : at + 1]
            end = payload.find(b'"', at)
            fields = payload[at + 1 : end].split(b"|")
            if kind == b"L":
                if int(fields[2]) != client.index:  # the other user's device, not the echo
                    step = int(fields[0])
                    self.delivered[step].append(now - float(fields[1]))
                    self.last_delivery[step] = now
            elif kind == b"G":
                self.fanout[int(fields[0])].append(now)
        elif payload.startswith(_RESPONSE):
            at = payload.find(_BODY)
            if payload.find(_OK_FALSE, 0, 120) >= 0 or at < 0:
                self.errors[-1] += 1
                return
            at += len(_BODY)
            if payload[at : at + 1] == b"L":
                end = payload.find(b'"', at)
                fields = payload[at + 1 : end].split(b"|")
                step = int(fields[0])
                self.acked[step].append(now - float(fields[1]))
        elif payload.startswith(_HELLO) and client.hello is not None and not client.hello.done():
            client.hello.set_result(None)


class WsClient(asyncio.Protocol):
    """One WebSocket to chinwag; frames go to ``recorder.frame``."""

    __slots__ = ("_buf", "_fragments", "_upgraded", "hello", "index", "recorder", "transport")

    def __init__(self, index: int, recorder: Recorder, hello: asyncio.Future[None]) -> None:
        self.index = index
        self.recorder = recorder
        self.hello: asyncio.Future[None] | None = hello
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.recorder.closed.append(self.index)
        if self.hello is not None and not self.hello.done():
            self.hello.set_exception(ConnectionError(f"device {self.index}: connection lost"))

    def send(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.write(encode_text(payload))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.write(_control(0x8, struct.pack("!H", 1000)))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if self.hello is not None and not self.hello.done():
                    self.hello.set_exception(ConnectionError(bytes(buf[:200]).decode("latin-1")))
                if self.transport is not None:
                    self.transport.close()
                return
            del buf[: end + 4]
            self._upgraded = True
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            n = buf[pos + 1] & 0x7F
            at = pos + 2
            if n == 126:
                if size - at < 2:
                    break
                n = (buf[at] << 8) | buf[at + 1]
                at += 2
            elif n == 127:
                if size - at < 8:
                    break
                n = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if size - at < n:
                break
            payload = bytes(buf[at : at + n])
            pos = at + n
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x0:
                if not b0 & 0x80:
                    self._fragments.append(payload)
                    continue
                if self._fragments:
                    payload = b"".join([*self._fragments, payload])
                    self._fragments.clear()
                self.recorder.frame(self, payload, now)
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(_control(0xA, payload))
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
        if pos:
            del buf[:pos]


async def open_socket(
    host: str, port: int, device: Device, recorder: Recorder, timeout: float = 30.0
) -> WsClient:
    loop = asyncio.get_running_loop()
    hello: asyncio.Future[None] = loop.create_future()
    transport, client = await loop.create_connection(
        lambda: WsClient(device.index, recorder, hello), host, port
    )
    key = base64.b64encode(os.urandom(16))
    transport.write(
        b"GET /v1/websocket HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer %s\r\n\r\n" % (host.encode(), port, key, device.token.encode())
    )
    try:
        await asyncio.wait_for(hello, timeout)
    except BaseException:
        transport.close()
        raise
    client.hello = None
    return client


# --------------------------------------------------------------------------- worker


@dataclass
class Worker:
    host: str
    port: int
    recorder: Recorder = field(default_factory=Recorder)
    clients: dict[int, WsClient] = field(default_factory=dict)
    devices: dict[int, Device] = field(default_factory=dict)

    async def connect(self, devices: list[Device], concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()
        failures: list[str] = []

        async def one(device: Device) -> None:
            async with gate:
                try:
                    self.clients[device.index] = await open_socket(
                        self.host, self.port, device, self.recorder
                    )
                    self.devices[device.index] = device
                except (OSError, ConnectionError, TimeoutError) as exc:
                    failures.append(f"{device.index}: {exc!r:.200}")

        await asyncio.gather(*(one(d) for d in devices))
        return {
            "connected": len(devices) - len(failures),
            "failures": failures[:5],
            "seconds": time.monotonic() - started,
        }

    async def load(
        self, step: int, rate: float, seconds: float, start_at: float, indices: list[int]
    ) -> dict[str, Any]:
        """Open loop: by time t, ``rate * t`` messages have been sent, whatever the answers."""
        senders = [
            (self.clients[i], self.devices[i].conversation_id, i)
            for i in indices
            if i in self.clients
        ]
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = time.process_time()
        begun = time.monotonic()
        sent = 0
        lag_max = 0.0
        k = 0
        dumps = orjson.dumps
        while True:
            now = time.monotonic()
            elapsed = now - begun
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1 - sent
            if due > 1:
                lag_max = max(lag_max, (due - 1) / rate)
            for _ in range(due):
                client, conversation_id, index = senders[k % len(senders)]
                k += 1
                t = time.monotonic()
                client.send(
                    dumps(
                        {
                            "type": "request",
                            "request_id": f"s{step}.{sent}",
                            "method": "message.send",
                            "data": {
                                "conversation_id": conversation_id,
                                "id": str(uuid.uuid4()),
                                "parts": [
                                    {"mime_type": "text/plain", "body": f"L{step}|{t:.6f}|{index}"}
                                ],
                            },
                        }
                    )
                )
                sent += 1
            await asyncio.sleep(0.002)
        return {
            "sent": sent,
            "seconds": time.monotonic() - begun,
            "cpu": time.process_time() - cpu0,
            "schedule_lag_max": lag_max,
        }

    def fanout(self, k: int, sender: int, conversation_id: str) -> float:
        client = self.clients[sender]
        t = time.monotonic()
        client.send(
            orjson.dumps(
                {
                    "type": "request",
                    "request_id": f"g{k}",
                    "method": "message.send",
                    "data": {
                        "conversation_id": conversation_id,
                        "id": str(uuid.uuid4()),
                        "parts": [{"mime_type": "text/plain", "body": f"G{k}|{t:.6f}"}],
                    },
                }
            )
        )
        return t

    def counts(self, step: int) -> dict[str, int]:
        return {
            "delivered": len(self.recorder.delivered[step]),
            "acked": len(self.recorder.acked[step]),
            "errors": self.recorder.errors[-1],
            "closed": len(self.recorder.closed),
        }

    def close(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self.clients.clear()


async def _serve_commands(pipe: Pipe, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        result: Any = None
        if command == "connect":
            result = await worker.connect(args["devices"], args.get("concurrency", 64))
        elif command == "load":
            result = await worker.load(**args)
        elif command == "counts":
            result = worker.counts(args["step"])
        elif command == "collect":
            step = args["step"]
            result = {
                "delivered": worker.recorder.delivered.pop(step, []),
                "acked": worker.recorder.acked.pop(step, []),
                "last_delivery": worker.recorder.last_delivery.pop(step, 0.0),
            }
        elif command == "fanout":
            result = worker.fanout(**args) if args["sender"] in worker.clients else None
        elif command == "fanout_times":
            result = worker.recorder.fanout.pop(args["k"], [])
        elif command == "fanout_count":
            result = len(worker.recorder.fanout.get(args["k"], []))
        elif command == "cpu":
            result = time.process_time()
        elif command == "close":
            worker.close()
            await asyncio.sleep(0.5)
            result = len(worker.clients)
        elif command == "exit":
            pipe.send(None)
            return
        pipe.send(result)


def worker_main(pipe: Pipe, host: str, port: int) -> None:
    """Entry point of a client process (multiprocessing ``spawn``)."""
    raise_nofile_limit()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_commands(pipe, Worker(host, port)))
