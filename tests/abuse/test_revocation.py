"""Attack family 6: writing on an open socket after ``chinwag sessions revoke``.

Documented (docs/protocol.md "WebSocket"): once a session ends, a write on its socket
(``message.send``, ``receipt.mark``, ``typing.update``) is refused with
``authentication_required`` at once, whichever process ended it (here the CLI, which rings
no doorbell), even before the socket is closed; the socket is then closed with 4003, right
behind that refusal.

The server's revocation sweep is turned off here (``server_env``): with it on, it closed
the socket 0-2 s after the commit, and when that came before any write was answered the
test saw no refusal (CI, once in a full run on PostgreSQL), though nothing was wrong. Off,
the refused write is the only thing that can close the socket, so both are always seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.abuse.attacker import Socket, tally
from tests.abuse.conftest import ALSO_ON_POSTGRES, Figures, LegitChat, Target, User


async def _revoke(target: Target, user_id: str) -> None:
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chinwag.cli.main", "sessions", "revoke", target.app.app_id,
        user_id, "--database-url", target.database_url, "--json",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(cli.wait(), 30) == 0


async def _refused_over_rest(http: httpx.AsyncClient, user: User) -> None:
    """Until REST refuses the user's token (it does once the CLI has committed)."""
    async with asyncio.timeout(30):
        while (await http.get("/v1/me", headers=user.headers)).status_code == 200:
            await asyncio.sleep(0.01)  # the probe is not the attack: a gentle poll


@ALSO_ON_POSTGRES
@pytest.mark.server_env(CHINWAG_REVOCATION_SWEEP_SECONDS="86400")
async def test_writes_on_an_open_socket_after_the_cli_revoked_the_session(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    conversation_id = await target.conversation(http, mallory, ["bob"])
    socket = await Socket.open(target, mallory)
    revoked_at: list[int] = []  # requests sent by the time the revocation was committed

    async def write() -> None:
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() - start < 12:
                parts = [{"mime_type": "text/plain", "body": "still here"}]
                data = {"conversation_id": conversation_id, "id": str(uuid.uuid4()), "parts": parts}
                await socket.send("message.send", data)
                # At the session's message rate: the server keeps up, so a write sent after
                # the commit is also answered after it (a backlog would blur which is which).
                await asyncio.sleep(0.01)

    async with chat.during():
        start = time.monotonic()
        writer = asyncio.create_task(write())
        await asyncio.sleep(0.5)  # writes accepted before the revocation
        cli = asyncio.create_task(_revoke(target, "mallory"))
        probe = asyncio.create_task(_refused_over_rest(http, mallory))
        # Committed once the CLI has exited or REST refuses the token, whichever is seen
        # first (on a busy machine a REST answer can take longer than the socket's close).
        await asyncio.wait((cli, probe), return_when=asyncio.FIRST_COMPLETED)
        revoked_at.append(socket.sent)
        await cli
        await probe
        code, reason = await socket.close_by_server(timeout=10)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    after = [r for r in socket.responses if int(r["request_id"][1:]) > revoked_at[0]]
    counts = tally(figures, socket.responses)
    figures.refused(code or "none")
    assert (code, reason) == (4003, "session_revoked")
    assert counts["ok"] > 0
    # The first write after the commit is refused, saying how the session ended, and the
    # socket closes behind it: once one is refused none is accepted, and none sent after
    # the test saw the commit is. (On a busy machine the test may see the commit only after
    # the close, so the refusals are not looked for among those alone.)
    outcomes = ["ok" if r["ok"] else r["error"]["id"] for r in socket.responses]
    assert "authentication_required" in outcomes, "the open socket never refused a write"
    refused = outcomes.index("authentication_required")
    assert socket.responses[refused]["error"]["data"]["reason"] == "revoked"
    assert set(outcomes[refused:]) <= {"authentication_required", "rate_limited"}, outcomes
    assert not [r for r in after if r["ok"]], "a write was accepted after the revocation"
    chat.assert_unharmed()
