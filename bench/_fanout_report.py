"""The tables, plot and targets of ``bench/fanout.py`` (one node or several, any broker).

Kept apart from the benchmark's machinery so ``bench/doorbell.py`` can lay two runs side by
side with the same helpers. A *run* is the dict ``fanout.py`` writes to its ``.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Targets", "fmt_load", "targets", "write_markdown", "write_plot"]


@dataclass(frozen=True)
class Targets:
    """What a run is judged against (the defaults are the first fan-out issue's)."""

    rate: int = 2000
    p99_ms: float = 50.0
    fanout_ms: float = 250.0
    kib_per_socket: float = 30.0

    @classmethod
    def issue_10(cls) -> Targets:
        """Issue #10's speed section: 10,000 devices, 1,000 msg/s at p99 < 100 ms, 25 KiB."""
        return cls(rate=1000, p99_ms=100.0, kib_per_socket=25.0)


def fmt_load(load: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _topology(run: dict[str, Any]) -> str:
    nodes = run.get("nodes", 1)
    broker = run.get("broker_url", "memory://")
    where = (
        f"{nodes} `chinwag serve` processes on one database, each device of a pair on a "
        "different node (every 1:1 message crosses the broker)"
        if nodes > 1
        else "One `chinwag serve` process"
    )
    limits = run.get("rate_limit_url") or (
        "the broker's Redis" if broker.startswith("redis") else "memory://"
    )
    return (
        f"{where}; broker `{broker}`; rate-limit counters in {limits}; "
        f"{run['clients']} client process(es) "
        f"(`bench/_ws_load.py`); setup (not timed) took {run['setup_seconds']:.0f} s. "
        f"`CHINWAG_MAX_CONNECTIONS={run.get('max_connections', 10_000)}` (the default, "
        "10,000, counts every socket of a process and would refuse the last ones with 503)."
    )


def _load_table(run: dict[str, Any]) -> list[str]:
    nodes = run.get("nodes", 1)
    node_head = " | CPU per node" if nodes > 1 else ""
    pg = any("pg_xacts_per_msg" in s for s in run["load"]["steps"])
    pg_head = " | PostgreSQL transactions / CPU ms per msg" if pg else ""
    lines = [
        "| offered msg/s | sent/s | delivered | delivered msg/s | p50 ms | p90 ms | p99 ms "
        "| max ms | ack p50 / p99 ms | server CPU (main + other threads)"
        f"{node_head} | server CPU ms/msg{pg_head} | server loop waiting for a CPU "
        "| client CPU | load (1 min) | sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if nodes > 1 else "")
        + ("---:|" if pg else "")
        + "---:|---:|---:|---:|:---:|",
    ]
    for s in run["load"]["steps"]:
        node_cell = (
            " | " + " / ".join(f"{c:.2f}" for c in s.get("node_cpu", [])) if nodes > 1 else ""
        )
        lines.append(
            f"| {s['offered']:,} | {s['send_rate']:,.0f} | {s['delivered']:,}/{s['sent']:,} "
            f"| {s['delivered_rate']:,.0f} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} "
            f"| {s['p99_ms']:.1f} | {s['max_ms']:.0f} "
            f"| {s['ack_p50_ms']:.1f} / {s['ack_p99_ms']:.1f} "
            f"| {s['server_cpu']:.2f} ({s['server_main_cpu']:.2f} + {s['server_other_cpu']:.2f}"
            + (f"; {s['server_system_share']:.0%} kernel" if "server_system_share" in s else "")
            + ")"
            f"{node_cell} | {s['server_cpu_ms_per_msg']:.2f} "
            + (
                f"| {s['pg_xacts_per_msg']:.2f} / {s['pg_cpu_ms_per_msg']:.2f} "
                if "pg_xacts_per_msg" in s
                else ("| — " if pg else "")
            )
            + f"| {' / '.join(f'{w:.0%}' for w in s.get('node_wait', [])) or '—'} "
            f"| {' / '.join(f'{c:.2f}' for c in s['client_cpu'])} "
            f"| {s['load_after'][0]:.2f} | {'yes' if s['sustained'] else 'no'} |"
        )
    return lines


def _fanout_section(fan: dict[str, Any] | None) -> list[str]:
    if fan is None:
        return []
    lines = [
        f"## (b) Fan-out to a {fan['members']:,}-member conversation",
        "",
        "One group device sends; time until the last of the conversation's devices (the "
        "sender's own included) has the event. Run 0 is a warm-up and is not counted.",
        "",
        "| run | devices | first ms | median device ms | last device ms | load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fan["runs"]:
        lines.append(
            f"| {r['k']}{' (warm-up)' if r['warmup'] else ''} | {r['devices']:,} "
            f"| {r['first_ms']:.1f} | {r['median_ms']:.1f} | {r['last_ms']:.1f} "
            f"| {r['load'][0]:.2f} |"
        )
    return [
        *lines,
        "",
        f"Last device: median **{fan['median_last_ms']:.0f} ms**, max {fan['max_last_ms']:.0f} ms"
        f", min {fan['min_last_ms']:.0f} ms.",
        "",
    ]


def _memory_section(run: dict[str, Any]) -> list[str]:
    mem = run["memory"]
    nodes = run.get("nodes", 1)
    lines = [
        "## (c) Server memory per idle authenticated WebSocket",
        "",
        ("RSS is the sum over the nodes. " if nodes > 1 else "")
        + "Each row opens one more group of sockets (pair devices, group devices, then the "
        "`--idle` devices, which only authenticate and wait); all stay open for (a)"
        + (" and (b)." if run["fanout"] is not None else "."),
        "",
        "| sockets open | opened in this row | server RSS MiB | KiB per socket | connects/s "
        "| server CPU ms/connect | load (1 min) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in mem["rows"]:
        per = f"{r['per_socket'] / 1024:.1f}" if "per_socket" in r else "—"
        rate = f"{r['connect_per_second']:.0f}" if "connect_per_second" in r else "—"
        cpu = f"{r['server_cpu_ms_per_connect']:.2f}" if "server_cpu_ms_per_connect" in r else "—"
        failed = f", {r['failed']:,} failed" if r.get("failed") else ""
        group = f"{r['group']}{failed}" if "group" in r else "baseline"
        lines.append(
            f"| {r['sockets']:,} | {group} | {r['rss'] / 2**20:.1f} | {per} | {rate} | {cpu} "
            f"| {r['load'][0]:.2f} |"
        )
    return [
        *lines,
        "",
        "Baseline (0 sockets) is measured after 20 sockets were opened and closed, so imports "
        f"and caches are warm. Server file descriptors with every socket open: {mem['fds']:,}.",
        "",
    ]


def _gc_lines(run: dict[str, Any]) -> list[str]:
    """With ``--gc-log``: the servers' full collections during each step (and its drain)."""
    steps = [s for s in run["load"]["steps"] if "gc_full" in s]
    if not steps or not any(s["gc_slow_ms"] for s in steps):
        return []
    return [
        "",
        "Garbage collection (`--gc-log`), per step: "
        + "; ".join(
            f"{s['offered']:,} msg/s: {s['gc_full']} full collection(s), longest "
            f"{s['gc_full_max_ms']:.0f} ms, {s['gc_slow_ms']:.0f} ms in slow collections"
            for s in steps
        )
        + ". A collection stops the event loop for its whole duration.",
    ]


def write_markdown(path: Path, run: dict[str, Any]) -> None:
    load = run["load"]
    info = run["machine"]
    lines = [
        "# Live delivery over WebSockets (`bench/fanout.py`)",
        "",
        f"Command: `{run['command']}`",
        "",
        f"Machine: {info['cores_logical']} logical cores ({info['cpu']}, "
        f"{info['cpu_mhz']} MHz), {info['memory_gib']} GiB, Python {info['python']}, "
        f"SQLite {info['sqlite']}, {info['platform']}; {info['date']}; speed probe "
        f"{info.get('speed_probe_ms', '—')} ms (`_load.speed_probe`: lower is faster). "
        f"Database: `{run['database']}`. Load average at start: {fmt_load(info['loadavg'])}, "
        f"at end: {fmt_load(run['load_end'])} (other engineers' test suites share the cores).",
        "",
        f"Server code: {run['server_code']}.",
        "",
        _topology(run),
        "",
        "## (a) 1:1 conversations: send → the other device's `message.created`",
        "",
        f"{run['devices']} devices ({run['devices'] // 2} pairs, one device each) plus "
        f"{run['devices']} idle group devices"
        + (f" and {run['idle']:,} idle devices" if run.get("idle") else "")
        + "; open-loop `message.send` over the sockets, "
        f"{run['step_seconds']:.0f} s per step. Latency percentiles are over every "
        'delivered message of the step; "ack" is send → the sender\'s own response.',
        "",
        *_load_table(run),
        "",
        f"Highest sustained offered rate: **{load['max_sustained'] or 'none'} msg/s** "
        "(sustained = at least 99 % delivered, send schedule kept, p99 under 1 s). "
        "CPU figures are cores (1.00 = one core busy for the step's wall time, drain "
        "included). *Waiting for a CPU* is the share of the step's wall time the server's "
        "event-loop thread was ready to run but queued behind other processes "
        "(`/proc/<pid>/schedstat`): the shared machine's part of the latency, per node."
        + (
            " Server CPU at rest (every socket open, no messages, 3 s): "
            + " / ".join(f"{c:.2f}" for c in load["rest"])
            + " cores."
            if "rest" in load
            else ""
        ),
        *_gc_lines(run),
        "",
        *_fanout_section(run["fanout"]),
        *_memory_section(run),
        "## Targets",
        "",
        "| target | result | met |",
        "|---|---|:---:|",
    ]
    for target, result, met in run["targets"]:
        lines.append(f"| {target} | {result} | {'yes' if met else '**no**'} |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, run: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goal = Targets(**run["target_values"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    steps = run["load"]["steps"]
    rates = [s["offered"] for s in steps]
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max")):
        ax1.plot(rates, [max(0.1, s[key]) for s in steps], marker="o", label=label)
    ax1.axhline(goal.p99_ms, color="red", linestyle="--", linewidth=1, label="p99 target")
    ax1.axvline(goal.rate, color="grey", linestyle=":", linewidth=1)
    ax1.set_yscale("log")
    ax1.set_xlabel("offered messages/s (aggregate)")
    ax1.set_ylabel("send → other device (ms)")
    sockets = run["memory"]["rows"][-1]["sockets"]
    ax1.set_title(f"(a) 1:1 latency, {sockets:,} sockets open")
    twin = ax1.twinx()
    twin.plot(rates, [s["delivered_rate"] for s in steps], color="black", linestyle="--",
              marker="x", label="delivered/s")  # fmt: skip
    twin.set_ylabel("delivered messages/s")
    lines1, labels1 = ax1.get_legend_handles_labels()
    lines2, labels2 = twin.get_legend_handles_labels()
    ax1.legend(lines1 + lines2, labels1 + labels2, fontsize=8, loc="upper left")

    if run["fanout"] is not None:
        runs = [r for r in run["fanout"]["runs"] if not r["warmup"]]
        ks = [r["k"] for r in runs]
        ax2.plot(ks, [r["last_ms"] for r in runs], marker="o", label="last device")
        ax2.plot(ks, [r["median_ms"] for r in runs], marker="o", label="median device")
        ax2.plot(ks, [r["first_ms"] for r in runs], marker="o", label="first device")
        ax2.axhline(goal.fanout_ms, color="red", linestyle="--", linewidth=1, label="target")
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel("repetition")
        ax2.set_ylabel("ms after send")
        ax2.set_title(f"(b) fan-out to {run['fanout']['members']:,} devices")
    else:
        per_node = [s.get("node_cpu", [s["server_cpu"]]) for s in steps]
        for n in range(len(per_node[0]) if per_node else 0):
            ax2.plot(rates, [c[n] for c in per_node], marker="o", label=f"node {n + 1}")
        ax2.plot(rates, [s["load_after"][0] / 2 for s in steps], color="grey", linestyle=":",
                 label="load avg / 2 (machine)")  # fmt: skip
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel("offered messages/s (aggregate)")
        ax2.set_ylabel("server CPU (cores)")
        ax2.set_title("(a) server CPU per node")
    ax2.legend(fontsize=8)

    rows = [r for r in run["memory"]["rows"] if "per_socket" in r]
    ax3.bar([f"{r['sockets']:,}" for r in rows], [r["per_socket"] / 1024 for r in rows])
    ax3.axhline(goal.kib_per_socket, color="red", linestyle="--", linewidth=1, label="target")
    ax3.set_xlabel("idle sockets open")
    ax3.set_ylabel("server RSS increase per socket (KiB)")
    ax3.set_title("(c) memory per idle connection")
    ax3.legend(fontsize=8)
    nodes = run.get("nodes", 1)
    fig.suptitle(
        f"chinwag live delivery — {nodes} server process{'es' if nodes > 1 else ''}, "
        f"broker {run.get('broker_url', 'memory://')}, {run['machine']['cores_logical']} cores, "
        f"load {run['machine']['loadavg'][0]:.1f} at start, {run['load_end'][0]:.1f} at end",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(run: dict[str, Any], goal: Targets) -> list[tuple[str, str, bool]]:
    steps = {s["offered"]: s for s in run["load"]["steps"]}
    at = steps.get(goal.rate)
    if at is None:
        rate_result, rate_met = f"{goal.rate} msg/s not offered or not reached", False
    else:
        rate_met = bool(at["sustained"]) and at["p99_ms"] < goal.p99_ms
        rate_result = f"{at['delivered_rate']:,.0f} msg/s delivered, p99 {at['p99_ms']:.1f} ms" + (
            "" if at["sustained"] else " (not sustained)"
        )
    under = [s["offered"] for s in steps.values() if s["sustained"] and s["p99_ms"] < goal.p99_ms]
    rows = [r for r in run["memory"]["rows"] if "per_socket" in r]
    worst = max(r["per_socket"] for r in rows) / 1024
    result = [
        (f"{goal.rate:,} msg/s, p99 < {goal.p99_ms:.0f} ms", rate_result, rate_met),
        (
            f"highest offered rate at p99 < {goal.p99_ms:.0f} ms (reported)",
            f"{max(under):,} msg/s" if under else "none",
            bool(under),
        ),
    ]
    fan = run["fanout"]
    if fan is not None:
        result.append(
            (
                f"{fan['members']:,}-member fan-out < {goal.fanout_ms:.0f} ms (median of the runs)",
                f"median {fan['median_last_ms']:.0f} ms, max {fan['max_last_ms']:.0f} ms",
                fan["median_last_ms"] < goal.fanout_ms,
            )
        )
    result.append(
        (
            f"< {goal.kib_per_socket:.0f} KiB per idle connection",
            ", ".join(f"{r['per_socket'] / 1024:.1f} KiB at {r['sockets']:,}" for r in rows),
            worst < goal.kib_per_socket,
        )
    )
    return result
