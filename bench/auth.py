"""Full authentications per second (nonce + session) per algorithm, and the cost of each step.

Run from the repository root::

    .venv/bin/python bench/auth.py                       # all algorithms, 10 s each
    .venv/bin/python bench/auth.py --alg ES256 --seconds 20 --concurrency 32

What it does, in order:

1. **Setup.** A fresh SQLite database in a temporary directory (or ``--database-url``); one
   production app per algorithm, each with one key (generated pair, or an HS256 secret),
   created through the same handlers the CLI calls, before any server starts.
2. **Steps, in-process (no sockets).** Each step of a full authentication timed with
   ``time.perf_counter`` over many iterations, reported in µs per operation: nonce issue,
   SQLite reads, token parse, signature verify per algorithm, claims check, the session
   transaction, the whole handler, and the whole request through the FastAPI app called as
   ASGI (so framework cost = ASGI - handler). The client's signing cost is timed too.
3. **Load, over HTTP.** ONE ``chinwag serve`` process (uvloop + httptools, auth rate limit
   off). ``--workers`` client processes each hold ``--concurrency / workers`` keep-alive
   connections (a lean hand-built HTTP/1.1 client, see ``_load.py``); every connection loops
   POST /v1/nonces → sign an identity token with the app's key → POST /v1/sessions. After a
   warm-up, it counts full authentications for ``--seconds`` per algorithm, with latency
   percentiles, the server's CPU time (psutil) and the generators' CPU time.

Results: ``bench/results/auth.md`` (tables + machine info), ``auth.json`` and ``auth.png``.
Everything is on 127.0.0.1, bounded in time, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (
    HttpConnection,
    HttpError,
    Progress,
    ServerProcess,
    loadavg,
    machine_info,
    percentile,
)

__all__ = ["main"]

ALGS = ("ES256", "RS256", "PS256", "EdDSA", "HS256")
RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 1000.0


# --------------------------------------------------------------------------- the app's key


@dataclass(frozen=True)
class AppKey:
    """One app and the key its backend signs with (what the load generator needs)."""

    alg: str
    app_id: str
    kid: str
    private_key_pem: str | None = None
    secret: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """Signs identity tokens like an app's backend would, with the key loaded once.

    Uses PyJWT's algorithm objects directly (the same code ``jwt.encode`` ends in) so the
    per-token cost is the signature plus a little base64, not PEM parsing each time.
    """

    def __init__(self, key: AppKey) -> None:
        from cryptography.hazmat.primitives import serialization
        from jwt.algorithms import get_default_algorithms

        from chinwag.core.keys import hmac_secret_bytes

        self._algorithm = get_default_algorithms()[key.alg]
        self._key: Any
        if key.secret is not None:
            self._key = hmac_secret_bytes(key.secret)
        else:
            assert key.private_key_pem is not None
            self._key = serialization.load_pem_private_key(
                key.private_key_pem.encode(), password=None
            )
        header = orjson.dumps({"alg": key.alg, "kid": key.kid, "typ": "JWT"})
        self._header = _b64(header)

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = f"{self._header}.{_b64(orjson.dumps(claims))}"
        signature = self._algorithm.sign(signing_input.encode(), self._key)
        return f"{signing_input}.{_b64(signature)}"


# --------------------------------------------------------------------------- setup


def _settings(database_url: str) -> Any:
    from chinwag.server.settings import Settings

    return Settings(database_url=database_url, auth_rate_per_second=0, log_level="warning")


async def _create_apps(services: Any, algs: list[str]) -> dict[str, AppKey]:
    from chinwag.server.handlers import apps as app_handlers

    keys: dict[str, AppKey] = {}
    for alg in algs:
        app, _ = await app_handlers.create_app(services, f"bench {alg}", production=True)
        if alg == "HS256":
            new = await app_handlers.add_secret(services, app.id)
            keys[alg] = AppKey(alg, app.id, new.record.kid, secret=new.secret)
        else:
            new = await app_handlers.generate_key(services, app.id, alg)
            keys[alg] = AppKey(alg, app.id, new.record.kid, private_key_pem=new.private_key_pem)
    return keys


async def setup_database(database_url: str, algs: list[str]) -> dict[str, AppKey]:
    """Migrate the database and create one production app + key per algorithm."""
    from chinwag.server.context import open_services

    async with open_services(_settings(database_url)) as services:
        return await _create_apps(services, algs)


# --------------------------------------------------------------------------- steps in-process


@dataclass(frozen=True)
class Cost:
    """One step's cost per operation: wall clock, and CPU of the whole process (all threads,
    so aiosqlite's worker thread is included). CPU is the steadier figure on a busy machine."""

    wall_us: float
    cpu_us: float


def _time_sync(fn: Callable[[], object], min_seconds: float, min_iterations: int) -> Cost:
    """Cost of one call of ``fn``: run until both minimums are met."""
    for _ in range(20):
        fn()  # warm caches
    n = 0
    started, cpu = time.perf_counter(), time.process_time()
    elapsed = 0.0
    while n < min_iterations or elapsed < min_seconds:
        for _ in range(50):
            fn()
        n += 50
        elapsed = time.perf_counter() - started
    return Cost(elapsed / n * 1e6, (time.process_time() - cpu) / n * 1e6)


async def _time_async(
    fn: Callable[[int], Awaitable[object]], iterations: int, warmup: int = 20
) -> Cost:
    """Cost of one await of ``fn(i)``, ``i`` counting up so each call can use fresh inputs."""
    for i in range(warmup):
        await fn(i)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(warmup, warmup + iterations):
        await fn(i)
    return Cost(
        (time.perf_counter() - started) / iterations * 1e6,
        (time.process_time() - cpu) / iterations * 1e6,
    )


async def _asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """Call the FastAPI app as ASGI with one POST: the whole framework, no socket."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class StepResults:
    common: dict[str, Cost] = field(default_factory=dict)
    """Steps that do not depend on the algorithm."""
    per_alg: dict[str, dict[str, Cost]] = field(default_factory=dict)
    """alg → step → cost."""
    iterations: int = 0


async def measure_steps(
    database_url: str, algs: list[str], iterations: int, progress: Progress
) -> StepResults:
    from chinwag.core.identity_tokens import (
        TokenPolicy,
        _check_claims,  # private, but it is exactly the "claims check" step
        parse_identity_token,
    )
    from chinwag.core.nonces import check_nonce
    from chinwag.core.session_tokens import new_session_token
    from chinwag.server.app import create_app
    from chinwag.server.handlers import auth as auth_handlers
    from chinwag.server.handlers.apps import get_app
    from chinwag.server.storage import apps as app_store
    from chinwag.server.storage import sessions as session_store
    from chinwag.server.storage import users as user_store
    from chinwag.server.storage.records import SessionRecord

    settings = _settings(database_url)
    app = create_app(settings)
    results = StepResults(iterations=iterations)
    min_s = 0.3
    async with app.router.lifespan_context(app):
        services = app.state.services
        keys = await _create_apps(services, algs)
        first = keys[algs[0]]
        app_record = await get_app(services, first.app_id)
        note = f"{iterations} iterations per async step"

        async def measure(
            target: dict[str, Cost], name: str, fn: Callable[[int], Awaitable[object]]
        ) -> None:
            target[name] = await _time_async(fn, iterations)

        def step(name: str) -> None:
            progress.update(f"steps: {name}"[:24], done_seconds=0, note=note)

        # -- algorithm-independent steps ---------------------------------------------------
        step("nonce issue")
        results.common["nonce issue (HMAC-SHA256)"] = _time_sync(
            lambda: auth_handlers.new_nonce(services, app_record.id), min_s, 2000
        )
        nonce_value = auth_handlers.new_nonce(services, app_record.id).value
        now = services.now()
        step("nonce check")
        results.common["nonce check (HMAC + SHA-256 key)"] = _time_sync(
            lambda: check_nonce(nonce_value, app_record.id, secret=services.nonce_secret, now=now),
            min_s,
            2000,
        )

        async def read_app(_: int) -> None:
            async with services.db.read() as conn:
                await app_store.get_app(conn, first.app_id)

        step("app lookup")
        await measure(results.common, "app lookup (SQLite read)", read_app)

        async def read_key(_: int) -> None:
            async with services.db.read() as conn:
                await app_store.get_key(conn, first.app_id, first.kid)

        step("key lookup")
        await measure(results.common, "key lookup (SQLite read)", read_key)

        checked = [
            check_nonce(
                auth_handlers.new_nonce(services, app_record.id).value,
                app_record.id,
                secret=services.nonce_secret,
                now=now,
            )
            for _ in range(iterations + 20)
        ]

        async def transaction(i: int) -> None:
            # What create_session does inside its transaction, via the same storage calls.
            async with services.db.transaction() as tx:
                c = checked[i]
                assert await session_store.consume_nonce(
                    tx.conn, key=c.key, app_id=app_record.id, expires_at=c.expires_at
                )
                user_id = f"step-user-{i % 200}"
                user = await user_store.get_user(tx.conn, app_record.id, user_id)
                if user is None:
                    user = await user_store.insert_user(
                        tx.conn,
                        app_id=app_record.id,
                        user_id=user_id,
                        anonymous=False,
                        profile={},
                        now=now,
                    )
                token = new_session_token(services.random(48))
                await session_store.insert_session(
                    tx.conn,
                    SessionRecord(
                        id=token.session_id,
                        app_id=app_record.id,
                        user_pk=user.pk,
                        secret_hash=token.secret_hash,
                        created_at=now,
                        expires_at=now + 3600,
                        revoked_at=None,
                        revoked_reason=None,
                    ),
                )

        step("session transaction")
        await measure(results.common, "session transaction (nonce + user + session)", transaction)

        nonce_body = orjson.dumps({"app_id": first.app_id})

        async def asgi_nonce(_: int) -> None:
            status, body = await _asgi_post(app, "/v1/nonces", nonce_body)
            assert status == 201, body

        step("POST /v1/nonces ASGI")
        await measure(results.common, "POST /v1/nonces through FastAPI (ASGI)", asgi_nonce)

        async def nonce_handler(_: int) -> None:
            app_ = await get_app(services, first.app_id)
            auth_handlers.new_nonce(services, app_.id)

        step("nonce handler")
        await measure(results.common, "nonce handler (app lookup + issue)", nonce_handler)

        # -- per algorithm -------------------------------------------------------------------
        for alg in algs:
            key = keys[alg]
            signer = Signer(key)
            alg_app = await get_app(services, key.app_id)
            policy = TokenPolicy(
                app_id=alg_app.id,
                production=alg_app.production,
                require_nonce=alg_app.require_nonce,
                max_token_age=float(alg_app.max_token_age),
                leeway=settings.token_leeway_seconds,
            )
            async with services.db.read() as conn:
                record = await app_store.get_key(conn, key.app_id, key.kid)
            assert record is not None
            material = services.keys.material(record)
            iat = int(now)
            sample = signer.sign(
                {
                    "sub": "step-user",
                    "nce": auth_handlers.new_nonce(services, alg_app.id).value,
                    "iat": iat,
                }
            )
            parsed = parse_identity_token(sample)
            timings: dict[str, Cost] = {}
            step(f"{alg} sign/verify")
            claims = {"sub": "u", "nce": nonce_value, "iat": iat}
            timings["client: sign token"] = _time_sync(partial(signer.sign, claims), min_s, 200)
            timings["token parse (strict JWS + JSON)"] = _time_sync(
                partial(parse_identity_token, sample), min_s, 2000
            )
            timings["signature verify"] = _time_sync(
                partial(material.verify, parsed.signing_input, parsed.signature), min_s, 200
            )
            assert material.verify(parsed.signing_input, parsed.signature)
            timings["claims check"] = _time_sync(
                partial(_check_claims, parsed.claims, policy, now), min_s, 2000
            )

            step(f"{alg} handler")
            tokens = [
                signer.sign(
                    {
                        "sub": f"step-user-{i % 200}",
                        "nce": auth_handlers.new_nonce(services, alg_app.id).value,
                        "iat": iat,
                    }
                )
                for i in range(2 * (iterations + 20))
            ]

            async def handler(i: int, k: AppKey = key, toks: list[str] = tokens) -> None:
                await auth_handlers.create_session(services, k.app_id, toks[i])

            await measure(timings, "create_session handler (no HTTP)", handler)
            offset = iterations + 20

            async def asgi_session(
                i: int, k: AppKey = key, toks: list[str] = tokens, off: int = offset
            ) -> None:
                body = orjson.dumps({"app_id": k.app_id, "identity_token": toks[off + i]})
                status, out = await _asgi_post(app, "/v1/sessions", body)
                assert status == 201, out

            step(f"{alg} ASGI session")
            await measure(timings, "POST /v1/sessions through FastAPI (ASGI)", asgi_session)
            results.per_alg[alg] = timings
    return results


# --------------------------------------------------------------------------- load over HTTP


@dataclass
class WorkerResult:
    auths: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0
    sign_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None


async def _drive(
    port: int,
    key: AppKey,
    connections: int,
    worker: int,
    measure_from: float,
    measure_until: float,
    counter: Any,
) -> WorkerResult:
    signer = Signer(key)
    result = WorkerResult()
    nonce_body = orjson.dumps({"app_id": key.app_id})
    measuring_cpu: list[float] = []

    async def one_connection(index: int) -> None:
        i = 0
        async with HttpConnection("127.0.0.1", port) as conn:
            while True:
                started = time.time()
                if started >= measure_until:
                    return
                i += 1
                try:
                    status, payload = await conn.request("POST", "/v1/nonces", nonce_body)
                    if status != 201:
                        raise HttpError(status, payload)
                    nonce = orjson.loads(payload)["nonce"]
                    t_sign = time.perf_counter()
                    token = signer.sign(
                        {
                            "sub": f"user-{worker}-{index}-{i % 50}",
                            "nce": nonce,
                            "iat": int(started),
                        }
                    )
                    signed = time.perf_counter() - t_sign
                    body = orjson.dumps({"app_id": key.app_id, "identity_token": token})
                    status, payload = await conn.request("POST", "/v1/sessions", body)
                    if status != 201:
                        raise HttpError(status, payload)
                except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
                    if started >= measure_from:
                        result.errors += 1
                        result.first_error = result.first_error or repr(exc)[:300]
                    await conn.close()
                    await asyncio.sleep(0.05)
                    await conn.connect()
                    continue
                finished = time.time()
                if started >= measure_from and finished <= measure_until:
                    result.auths += 1
                    result.sign_seconds += signed
                    result.latencies_ms.append((finished - started) * 1e3)
                    counter[worker] += 1

    async def cpu_marks() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.time()))
        measuring_cpu.append(time.process_time())
        await asyncio.sleep(max(0.0, measure_until - time.time()))
        measuring_cpu.append(time.process_time())

    await asyncio.gather(cpu_marks(), *(one_connection(c) for c in range(connections)))
    result.cpu_seconds = measuring_cpu[1] - measuring_cpu[0]
    return result


def _worker_main(
    port: int,
    key: AppKey,
    connections: int,
    worker: int,
    measure_from: float,
    measure_until: float,
    counter: Any,
    results: Any,
) -> None:
    import uvloop

    try:
        result = uvloop.run(
            _drive(port, key, connections, worker, measure_from, measure_until, counter)
        )
    except BaseException as exc:  # report, never hang the parent
        result = WorkerResult(errors=1, first_error=repr(exc)[:300])
    results.put(asdict(result))


@dataclass
class LoadResult:
    alg: str
    seconds: float
    auths: int
    errors: int
    auth_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    server_cpu_percent: float
    server_cpu_us_per_auth: float
    client_cpu_percent: float
    client_cpu_us_per_auth: float
    client_sign_us_per_auth: float
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    first_error: str | None = None

    @property
    def capacity(self) -> float:
        """Auth/s one fully available core would sustain at the measured server CPU/auth."""
        return 1e6 / self.server_cpu_us_per_auth if self.server_cpu_us_per_auth else 0.0


def run_load(
    server: ServerProcess,
    key: AppKey,
    *,
    seconds: float,
    warmup: float,
    workers: int,
    concurrency: int,
    progress: Progress,
    done_before: float,
) -> LoadResult:
    ctx = mp.get_context("spawn")
    counter = ctx.RawArray("q", workers)
    queue = ctx.Queue()
    # Spawned workers need ~1 s to import; the window starts after that plus the warm-up.
    measure_from = time.time() + 1.5 + warmup
    measure_until = measure_from + seconds
    per_worker = [
        concurrency // workers + (1 if w < concurrency % workers else 0) for w in range(workers)
    ]
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(server.port, key, per_worker[w], w, measure_from, measure_until, counter, queue),
            daemon=True,
        )
        for w in range(workers)
        if per_worker[w] > 0
    ]
    for p in procs:
        p.start()
    load_before = loadavg()
    while time.time() < measure_from:
        time.sleep(0.05)
    cpu_start = server.cpu_seconds()
    while (now := time.time()) < measure_until:
        elapsed = now - measure_from
        count = sum(counter)
        progress.update(
            f"load {key.alg}",
            done_seconds=done_before + elapsed,
            note=f"{count / elapsed if elapsed > 0.5 else 0:7.0f} auth/s",
        )
        time.sleep(min(0.25, max(0.0, measure_until - now)))
    cpu_end = server.cpu_seconds()
    load_after = loadavg()
    collected = [WorkerResult(**queue.get(timeout=60)) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    auths = sum(r.auths for r in collected)
    latencies = sorted(x for r in collected for x in r.latencies_ms)
    client_cpu = sum(r.cpu_seconds for r in collected)
    server_cpu = cpu_end - cpu_start
    return LoadResult(
        alg=key.alg,
        seconds=seconds,
        auths=auths,
        errors=sum(r.errors for r in collected),
        auth_per_second=auths / seconds,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        server_cpu_percent=100 * server_cpu / seconds,
        server_cpu_us_per_auth=server_cpu / auths * 1e6 if auths else 0.0,
        client_cpu_percent=100 * client_cpu / seconds,
        client_cpu_us_per_auth=client_cpu / auths * 1e6 if auths else 0.0,
        client_sign_us_per_auth=sum(r.sign_seconds for r in collected) / auths * 1e6
        if auths
        else 0.0,
        loadavg_before=load_before,
        loadavg_after=load_after,
        first_error=next((r.first_error for r in collected if r.first_error), None),
    )


# --------------------------------------------------------------------------- report


def _breakdown(steps: StepResults, alg: str, load: LoadResult | None) -> dict[str, float]:
    """Server CPU µs per full authentication, split into parts that add up (in-process)."""
    c = {k: v.cpu_us for k, v in steps.common.items()}
    a = {k: v.cpu_us for k, v in steps.per_alg[alg].items()}
    reads = 2 * c["app lookup (SQLite read)"] + c["key lookup (SQLite read)"]
    tx = c["session transaction (nonce + user + session)"]
    verify = a["signature verify"]
    pure = (
        c["nonce issue (HMAC-SHA256)"]
        + a["token parse (strict JWS + JSON)"]
        + a["claims check"]
        + c["nonce check (HMAC + SHA-256 key)"]
    )
    handlers = c["nonce handler (app lookup + issue)"] + a["create_session handler (no HTTP)"]
    asgi = (
        c["POST /v1/nonces through FastAPI (ASGI)"] + a["POST /v1/sessions through FastAPI (ASGI)"]
    )
    parts = {
        "SQLite reads (app x2, key)": reads,
        "session transaction": tx,
        "signature verify": verify,
        "parse, claims, nonce HMACs": pure,
        "handler glue": max(0.0, handlers - reads - tx - verify - pure),
        "FastAPI + pydantic (ASGI - handler)": max(0.0, asgi - handlers),
    }
    if load is not None and load.server_cpu_us_per_auth:
        parts["HTTP, sockets, contention (server CPU - ASGI)"] = max(
            0.0, load.server_cpu_us_per_auth - asgi
        )
    return parts


def write_markdown(
    path: Path,
    info: dict[str, object],
    args: argparse.Namespace,
    steps: StepResults | None,
    loads: list[LoadResult],
) -> None:
    lines = [
        "# Auth benchmark results",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/auth.py', *sys.argv[1:]])}`",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
    ]
    if loads:
        lines += [
            "## Full authentications per second (nonce + session, over HTTP)",
            "",
            f"One `chinwag serve` process on {args.db_label}; {args.workers} client "
            f"process(es), {args.concurrency} keep-alive connections, {args.warmup:g} s "
            f"warm-up then {args.seconds:g} s measured per algorithm. Server CPU is the "
            "server process's user+system time over the window; *capacity* is "
            "1 / (server CPU per auth): the rate one whole free core would sustain.",
            "",
            "| alg | auth/s | errors | p50 ms | p90 ms | p99 ms | server CPU % | server µs/auth "
            "| capacity auth/s | client CPU % | client µs/auth (sign) | loadavg before → after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in loads:
            lines.append(
                f"| {r.alg} | **{r.auth_per_second:,.0f}** | {r.errors} | {r.p50_ms:.1f} | "
                f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.server_cpu_percent:.0f} | "
                f"{r.server_cpu_us_per_auth:,.0f} | {r.capacity:,.0f} | "
                f"{r.client_cpu_percent:.0f} | {r.client_cpu_us_per_auth:,.0f} "
                f"({r.client_sign_us_per_auth:,.0f}) | {r.loadavg_before[0]} → "
                f"{r.loadavg_after[0]} |"
            )
        errs = [r for r in loads if r.first_error]
        for r in errs:
            lines.append(f"\n{r.alg} first error: `{r.first_error}`")
        lines.append("")
    if steps is not None:
        algs = list(steps.per_alg)
        lines += [
            "## Cost of each step, in-process (µs per operation, no sockets)",
            "",
            f"Async steps averaged over {steps.iterations} iterations, pure steps over "
            "≥ 0.3 s. *CPU* is the bench process's CPU time (all threads) per operation, "
            "*wall* the elapsed time.",
            "",
            "| step | CPU µs/op | wall µs/op |",
            "|---|---:|---:|",
            *(
                f"| {name} | {cost.cpu_us:,.1f} | {cost.wall_us:,.1f} |"
                for name, cost in steps.common.items()
            ),
            "",
            "CPU µs/op per algorithm (wall in brackets):",
            "",
            "| step | " + " | ".join(algs) + " |",
            "|---|" + "---:|" * len(algs),
        ]
        names = list(next(iter(steps.per_alg.values())))
        for name in names:
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{steps.per_alg[a][name].cpu_us:,.1f} ({steps.per_alg[a][name].wall_us:,.0f})"
                    for a in algs
                )
                + " |"
            )
        by_alg = {r.alg: r for r in loads}
        lines += [
            "",
            "### Server CPU per full authentication, by part (µs)",
            "",
            "Built from the in-process CPU figures above (and, for the last row, the "
            "server's measured CPU under load minus the in-process ASGI figures). Reads: "
            "one app lookup per request plus the key lookup.",
            "",
        ]
        breakdowns = {a: _breakdown(steps, a, by_alg.get(a)) for a in algs}
        parts = list(dict.fromkeys(p for b in breakdowns.values() for p in b))
        lines += [
            "| part | " + " | ".join(algs) + " |",
            "|---|" + "---:|" * len(algs),
            *(
                f"| {p} | " + " | ".join(f"{breakdowns[a].get(p, 0):,.0f}" for a in algs) + " |"
                for p in parts
            ),
            "| **total** | "
            + " | ".join(f"**{sum(breakdowns[a].values()):,.0f}**" for a in algs)
            + " |",
            "",
        ]
    path.write_text("\n".join(lines))


def write_plot(path: Path, steps: StepResults | None, loads: list[LoadResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5))
    if loads:
        names = [r.alg for r in loads]
        xs = range(len(names))
        measured = left.bar(
            [x - 0.2 for x in xs], [r.auth_per_second for r in loads], 0.4, label="measured"
        )
        left.bar_label(measured, fmt="%.0f", fontsize=8)
        left.bar(
            [x + 0.2 for x in xs],
            [r.capacity for r in loads],
            0.4,
            label="capacity (1 / server CPU per auth)",
            alpha=0.5,
        )
        left.axhline(TARGET, color="red", linestyle="--", linewidth=1, label="target 1,000/s")
        left.set_xticks(list(xs), names)
        left.set_ylabel("full authentications / s")
        left.set_title("Nonce + session over HTTP, one server process")
        left.legend(fontsize=8)
    if steps is not None:
        algs = list(steps.per_alg)
        by_alg = {r.alg: r for r in loads}
        breakdowns = {a: _breakdown(steps, a, by_alg.get(a)) for a in algs}
        parts = list(dict.fromkeys(p for b in breakdowns.values() for p in b))
        bottoms = [0.0] * len(algs)
        for part in parts:
            values = [breakdowns[a].get(part, 0.0) for a in algs]
            right.bar(algs, values, bottom=bottoms, label=part)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        right.set_ylabel("µs of server time per full authentication")
        right.set_title("Where the server's time goes")
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alg", action="append", choices=ALGS, help="repeatable; default all")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per alg")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per alg")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="connections in total (enough to keep one server core busy)",
    )
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--database-url",
        help="server database (default: a fresh SQLite file in a temporary directory)",
    )
    parser.add_argument("--iterations", type=int, default=500, help="per async in-process step")
    parser.add_argument("--skip-steps", action="store_true", help="only the HTTP load")
    parser.add_argument("--skip-load", action="store_true", help="only the in-process steps")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--profile-server",
        type=Path,
        metavar="PATH",
        help="run the server under cProfile and write its stats to PATH (slows it down)",
    )
    args = parser.parse_args(argv)
    args.alg = args.alg or list(ALGS)
    if not 1 <= args.workers <= args.concurrency or args.concurrency > 1024:
        parser.error("need 1 <= --workers <= --concurrency <= 1024")
    if args.seconds <= 0 or args.seconds > 600:
        parser.error("--seconds must be in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"machine: {json.dumps(info)}", file=sys.stderr)
    per_alg = 1.5 + args.warmup + args.seconds + 1.0
    total = (0 if args.skip_load else per_alg * len(args.alg)) + (0 if args.skip_steps else 30)
    progress = Progress(total)
    steps: StepResults | None = None
    loads: list[LoadResult] = []
    with tempfile.TemporaryDirectory(prefix="chinwag-bench-") as tmp:
        server_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/server.db"
        steps_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/steps.db"
        args.db_label = "SQLite (fresh file, WAL)" if not args.database_url else "the given URL"
        keys = asyncio.run(setup_database(server_url, args.alg))
        if not args.skip_steps:
            import uvloop  # the server runs on uvloop too

            steps = uvloop.run(measure_steps(steps_url, args.alg, args.iterations, progress))
            progress.finish("in-process steps done")
        if not args.skip_load:
            env = {"CHINWAG_AUTH_RATE_PER_SECOND": "0", "CHINWAG_LOG_LEVEL": "warning"}
            log_path = Path(tmp) / "server.log"
            try:
                profile: tuple[str, ...] = ()
                if args.profile_server:
                    profile = ("-m", "cProfile", "-o", str(args.profile_server.resolve()))
                with ServerProcess(
                    server_url, env=env, log_path=log_path, python_args=profile
                ) as server:
                    done = 0.0 if args.skip_steps else 30.0
                    for alg in args.alg:
                        result = run_load(
                            server,
                            keys[alg],
                            seconds=args.seconds,
                            warmup=args.warmup,
                            workers=args.workers,
                            concurrency=args.concurrency,
                            progress=progress,
                            done_before=done,
                        )
                        done += per_alg
                        loads.append(result)
                        progress.finish(
                            f"{alg}: {result.auth_per_second:,.0f} auth/s, "
                            f"server {result.server_cpu_us_per_auth:,.0f} µs CPU/auth "
                            f"({result.server_cpu_percent:.0f}% CPU), p50 {result.p50_ms:.1f} ms, "
                            f"errors {result.errors}, load {loadavg()[0]}"
                        )
            finally:
                with contextlib.suppress(OSError):
                    tail = log_path.read_text()[-2000:]
                    if tail.strip():
                        print(f"server log tail:\n{tail}", file=sys.stderr)
    info["loadavg_end"] = loadavg()
    md = args.out / "auth.md"
    write_markdown(md, info, args, steps, loads)
    (args.out / "auth.json").write_text(
        json.dumps(
            {
                "machine": info,
                "args": {k: str(v) for k, v in vars(args).items()},
                "steps": asdict(steps) if steps else None,
                "load": [asdict(r) | {"capacity": r.capacity} for r in loads],
            },
            indent=2,
        )
    )
    write_plot(args.out / "auth.png", steps, loads)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
