"""The push worker's claims: never a connected device's notification, and a lapsed
claim's late outcome is not recorded (the last test).

A pass drops the due notifications of online devices and then claims the rest, two
statements; on PostgreSQL a notification committed between them escaped the first and was
claimed by the second, so a connected device was woken (CI saw it once). Here the worker
never finds anything due (an hour's push delay) and the test claims itself, as the worker
would an instant after a send: the claim alone must leave the online device's job."""

from __future__ import annotations

import httpx
import pytest

from chinwag.server.settings import Settings
from chinwag.server.storage import push as store
from tests.server.test_push import device, put_gateway
from tests.support import AppFixture, RawWebSocket, RunningServer, hook_settings, send, start

Headers = dict[str, str]

pytestmark = pytest.mark.usefixtures("platform_admin")

HOUR = 3600.0


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url, push_delay=HOUR)


async def test_a_claim_leaves_the_notification_of_a_device_online_now(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    await put_gateway(client, app.app_id, "https://push.example/hook", include_body=False)
    online, online_token = await device(server, client, app, "bob", "tok-online")
    await device(server, client, app, "bob", "tok-offline")
    socket = await RawWebSocket.open(f"{server.ws_url}/v1/websocket", online_token)
    try:
        # registering again with the socket open marks the device online at once
        again = await client.post(
            "/v1/push_tokens", json={"kind": "apns", "token": "tok-online"}, headers=online
        )
        assert again.status_code == 204
        await send(client, alice, await start(client, alice, "bob"), "hello")
        now = server.services.now()
        async with server.services.db.transaction() as tx:
            claimed = await store.claim_due(
                tx.conn, now=now, due_by=now + 2 * HOUR, lease=60, limit=100
            )
    finally:
        socket.writer.close()
    assert sorted(job.token for job in claimed) == ["tok-offline"]


async def test_a_claim_that_lapsed_leaves_the_outcome_to_the_worker_that_took_it_again(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    """A worker that stalled past its lease while posting must not record its late outcome
    over the claim of the worker that took the notification again: its "delivered" would
    drop a job the other still owes, its "retry" would clear the other's lease."""
    await put_gateway(client, app.app_id, "https://push.example/hook", include_body=False)
    await device(server, client, app, "bob", "tok-offline")
    await send(client, alice, await start(client, alice, "bob"), "hello")
    now = server.services.now()
    due_by = now + 2 * HOUR
    db = server.services.db
    async with db.transaction() as tx:
        first = await store.claim_due(tx.conn, now=now, due_by=due_by, lease=1, limit=100)
    async with db.transaction() as tx:  # the first claim has lapsed: another worker takes it
        second = await store.claim_due(tx.conn, now=now + 5, due_by=due_by, lease=60, limit=100)
    ids = [job.id for job in first]
    assert len(ids) == 1
    assert [job.id for job in second] == ids
    stale, held = first[0].lease_until, second[0].lease_until
    async with db.transaction() as tx:  # the first worker's late outcomes change nothing
        assert await store.max_attempts(tx.conn, ids, lease_until=stale) is None
        await store.retry_jobs(
            tx.conn, ids, lease_until=stale, attempts=1, next_attempt_at=now, error="late"
        )
        await store.delete_jobs(tx.conn, ids, lease_until=stale)
    async with db.transaction() as tx:  # the second worker's still count
        assert await store.max_attempts(tx.conn, ids, lease_until=held) == 0
        await store.retry_jobs(
            tx.conn, ids, lease_until=held, attempts=1, next_attempt_at=now + 9, error="down"
        )
    async with db.transaction() as tx:
        again = await store.claim_due(tx.conn, now=now + 10, due_by=due_by, lease=60, limit=100)
    assert [(job.id, job.attempts) for job in again] == [(ids[0], 1)]
