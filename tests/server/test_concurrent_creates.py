"""Many conversations created at once by one user: all succeed, on both databases.

On PostgreSQL this deadlocked (503, "deadlock detected" in the log): the creations took
row locks on the same users in different orders. The fix is a consistent lock order, so
this test must pass without any retry."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from chinwag.server.settings import Settings

Headers = dict[str, str]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Rate limits off: the burst is the point, not the per-user creation limit."""
    return Settings(database_url=database_url, auth_rate_per_second=0, rate_limits=False)


@pytest.mark.parametrize("count", [16])
async def test_concurrent_creations_by_one_user_all_succeed(
    client: httpx.AsyncClient, alice: Headers, bob: Headers, count: int
) -> None:
    async def create(i: int) -> httpx.Response:
        others = ["bob", f"new-{i}", f"new-{(i + 1) % count}"]
        body = {"participants": others, "metadata": {"n": str(i)}}
        return await client.post("/v1/conversations", json=body, headers=alice)

    answers = await asyncio.gather(*(create(i) for i in range(count)))
    assert [a.status_code for a in answers] == [201] * count, [a.text for a in answers]
    listed = await client.get("/v1/conversations", headers=bob, params={"limit": 100})
    assert listed.status_code == 200
    assert len(listed.json()["conversations"]) == count


async def test_concurrent_creations_with_the_same_people_all_succeed(
    client: httpx.AsyncClient, alice: Headers, bob: Headers
) -> None:
    async def create() -> httpx.Response:
        return await client.post(
            "/v1/conversations", json={"participants": ["bob", "carol"]}, headers=alice
        )

    answers = await asyncio.gather(*(create() for _ in range(16)))
    assert [a.status_code for a in answers] == [201] * 16, [a.text for a in answers]
