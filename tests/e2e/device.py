"""One device for the end-to-end tests: a ``chinwag.client.Client`` in a process of its own.

Why a process: the session endings under test involve things only a real process has — it
can be paused (a laptop that slept), killed with SIGKILL mid-send, and restarted on the
same store folder. The test drives it with JSON lines:

* commands on stdin, ``{"id": 1, "cmd": "send", "conversation": ..., "text": ...}``, each
  answered by ``{"event": "reply", "id": 1, "ok": true, "result": ...}`` (or ``"ok": false``
  with the error's class name); commands run concurrently, so a ``sign_in`` waiting for
  the provider does not block ``state``;
* events on stdout: the SDK's own (``authenticated``, ``deauthenticated``, ``challenge``,
  ``message_sent``, ``error``, ...), ``provider`` for every call of the token provider,
  ``state`` whenever the auth state changes, ``received`` for messages arriving on the
  stream, and ``log`` for every warning the SDK logs.

The token provider plays the app's backend: it signs identity tokens (ES256, with the
nonce and a short ``exp`` when asked) with a private key the test generated through
``chinwag keys generate``. The ``provider`` command changes what it answers: ``sign``,
``user:<id>`` (signs for someone else), ``stop`` (returns ``STOP``), ``giveup`` (raises
``StopAuthentication``), ``fail`` (raises, so the SDK backs off) or ``hold`` (waits until
the mode changes: the backend is thinking). No credential is ever printed.

Run as ``python -m tests.e2e.device URL APP_ID STORE_DIR USER_ID KEY_FILE KID``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import jwt
import orjson

from chinwag.client import STOP, Client, Message, StopAuthentication

POLL_STATE = 0.01
"""How often the auth state is compared with the last one reported (seconds)."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once: the test waits on these."""
    line = orjson.dumps({"event": event, "t": time.time(), **fields}, default=str)
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


class Provider:
    """The app's backend, as far as the SDK can tell: signs tokens, or says no."""

    def __init__(self, user_id: str, key_pem: str, kid: str) -> None:
        self.user_id = user_id
        self.key_pem = key_pem
        self.kid = kid
        self.mode = "sign"
        self.ttl: float | None = None
        self.changed = asyncio.Event()
        self.client: Client | None = None

    def configure(self, mode: str, ttl: float | None) -> None:
        self.mode, self.ttl = mode, ttl
        self.changed.set()

    async def __call__(self, nonce: str, needs_refresh: bool) -> Any:  # str | STOP
        state = self.client.auth_state.value if self.client else None
        emit("provider", needs_refresh=needs_refresh, mode=self.mode, state=state)
        while self.mode == "hold":
            self.changed.clear()
            await self.changed.wait()
        if self.mode == "stop":
            return STOP
        if self.mode == "giveup":
            raise StopAuthentication
        if self.mode == "fail":
            raise RuntimeError("the app's backend is down")
        user = self.mode.removeprefix("user:") if self.mode.startswith("user:") else self.user_id
        return self.sign(user, nonce)

    def sign(self, user_id: str, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": user_id, "nce": nonce, "iat": now}
        if self.ttl is not None:
            claims["exp"] = now + self.ttl
        return jwt.encode(claims, self.key_pem, algorithm="ES256", headers={"kid": self.kid})


class LogToEvents(logging.Handler):
    """The SDK's warnings become ``log`` events, so a test can assert there were none."""

    def emit(self, record: logging.LogRecord) -> None:
        emit("log", level=record.levelname, logger=record.name, message=record.getMessage())


def _message(m: Message) -> dict[str, Any]:
    return {"id": m.id, "text": m.text, "state": m.state.value, "sender": m.sender_id}


class Device:
    def __init__(self, client: Client, provider: Provider) -> None:
        self.client = client
        self.provider = provider

    async def state(self) -> dict[str, Any]:
        client = self.client
        try:
            pending: int | None = await client.pending_count()
        except Exception:
            pending = None
        return {
            "auth_state": client.auth_state.value,
            "user": client.user.user_id if client.user else None,
            "logged_in": client.is_logged_in(),
            "pending": pending,
        }

    async def run(self, cmd: str, args: dict[str, Any]) -> Any:
        client = self.client
        if cmd == "sign_in":
            return (await client.authenticate()).user_id
        if cmd == "create_conversation":
            conversation = await client.create_conversation(args["participants"], distinct=True)
            return conversation.id
        if cmd == "send":
            return _message(await client.send_message(args["conversation"], args["text"]))
        if cmd == "conversations":
            return [c.id for c in await client.conversations()]
        if cmd == "messages":
            return [_message(m) for m in await client.messages(args["conversation"])]
        if cmd == "state":
            return await self.state()
        if cmd == "flush":
            return await client.flush_outbox()
        if cmd == "sync":
            return await client.sync_now()
        if cmd == "log_out":
            return await client.log_out()
        if cmd == "provider":
            return self.provider.configure(args["mode"], args.get("ttl"))
        if cmd == "tasks":
            return background_tasks()
        raise ValueError(f"unknown command {cmd!r}")

    async def answer(self, line: bytes) -> None:
        command = orjson.loads(line)
        request_id, cmd = command.pop("id"), command.pop("cmd")
        try:
            result = await self.run(cmd, command)
        except Exception as exc:
            emit("reply", id=request_id, ok=False, error=type(exc).__name__, message=str(exc))
        else:
            emit("reply", id=request_id, ok=True, result=result)


def background_tasks() -> list[str]:
    """The SDK's tasks still alive (the device's own are named ``device:*``)."""
    return sorted(
        repr(task.get_coro())
        for task in asyncio.all_tasks()
        if not task.get_name().startswith("device:") and not task.done()
    )


def subscribe(client: Client) -> None:
    def user_event(name: str) -> Any:
        return lambda user: emit(name, user=user.user_id, state=client.auth_state.value)

    client.on("authenticated", user_event("authenticated"))
    client.on(
        "deauthenticated",
        lambda reason: emit("deauthenticated", reason=reason, state=client.auth_state.value),
    )
    client.on("challenge", lambda nonce: emit("challenge", state=client.auth_state.value))
    client.on("error", lambda exc: emit("error", type=type(exc).__name__, message=str(exc)))
    client.on("message_sent", lambda message_id: emit("message_sent", id=message_id))
    client.on("message_failed", lambda message_id, exc: emit("message_failed", id=message_id))
    client.on("synced", lambda: emit("synced"))
    client.on("connected", lambda: emit("connected"))
    client.on("disconnected", lambda: emit("disconnected"))
    client.on("changes", lambda events: _received(events))


def _received(events: list[dict[str, Any]]) -> None:
    for event in events:
        if event.get("type") == "message.created":
            message = event["data"]["message"]
            texts = [p["body"] for p in message["parts"] if p["mime_type"] == "text/plain"]
            emit("received", id=message["id"], text="".join(texts), sender=message["sender_id"])


async def watch_state(client: Client) -> None:
    """Report every auth state the client passes through (the SDK has no event for it)."""
    last = None
    while True:
        if client.auth_state != last:
            last = client.auth_state
            emit("state", state=last.value)
        await asyncio.sleep(POLL_STATE)


async def read_commands(device: Device) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        task = loop.create_task(device.answer(line), name="device:command")
        pending.add(task)
        task.add_done_callback(pending.discard)


def _loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Whatever asyncio would print as "Exception in callback" or "Task exception was
    never retrieved": each one is an SDK bug the tests must see."""
    exc = context.get("exception")
    trace = "".join(traceback.format_exception(exc)) if exc is not None else None
    emit("loop_error", message=context.get("message"), exception=repr(exc), traceback=trace)


async def main(args: argparse.Namespace) -> None:
    asyncio.current_task().set_name("device:main")  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_error)
    provider = Provider(args.user_id, Path(args.key_file).read_text(), args.kid)
    client = Client(
        args.url, args.app_id, store_dir=args.store_dir, identity_token_provider=provider
    )
    provider.client = client
    subscribe(client)
    watcher = loop.create_task(watch_state(client), name="device:state")
    async with client:
        emit("ready", restored=client.user is not None, state=client.auth_state.value)
        await read_commands(Device(client, provider))
    watcher.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    for name in ("url", "app_id", "store_dir", "user_id", "key_file", "kid"):
        parser.add_argument(name)
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("chinwag").setLevel(logging.INFO)
    logging.getLogger("chinwag").addHandler(LogToEvents(logging.INFO))
    asyncio.run(main(parse_args()))
