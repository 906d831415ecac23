"""The cost of the Redis doorbell: one node, the same 1:1 load, broker memory:// vs redis://.

Run from the repository root::

    .venv/bin/python bench/doorbell.py                                  # 1000,2000 msg/s (~4 min)
    .venv/bin/python bench/doorbell.py --rates 100 --devices 20 --step-seconds 2 --out /tmp/d

Each run is a whole ``bench/fanout.py`` run (fresh SQLite database, one ``chinwag serve``,
1,000 devices in 500 pairs plus 1,000 idle group devices, fan-out skipped) with only the
server's ``CHINWAG_BROKER_URL`` changed, in three configurations: ``memory://``; the Redis
doorbell with the rate-limit counters kept in memory (``CHINWAG_RATE_LIMIT_URL=memory://``:
the doorbell alone); and the Redis broker as deployed by default, where the counters follow
it into Redis. On one node nobody else listens on the channel,
so the Redis broker's cost is what every node pays per stream advance: serialising the
doorbell, the ``PUBLISH`` round trip and reading its own doorbell back from the
subscription. ``--repeats`` alternates the configurations (memory, doorbell, both, memory, …) so
that a change in the machine's load falls on both.

Results: ``bench/results/doorbell.md`` (the two side by side per rate, then each run's full
tables), ``doorbell.json`` (every run as ``fanout.py`` writes it) and ``doorbell.png``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fanout
from _fanout_report import fmt_load

__all__ = ["main"]


def _configs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, fanout.py options): memory; the Redis doorbell alone; Redis for both."""
    return [
        (MEMORY, ["--broker-url", "memory://"]),
        (DOORBELL, ["--broker-url", args.redis_url, "--rate-limit-url", "memory://"]),
        (BOTH, ["--broker-url", args.redis_url]),
    ]


MEMORY = "memory://"
DOORBELL = "redis:// doorbell, limits in memory"
BOTH = "redis:// doorbell and limits (default)"


def _runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for repeat in range(args.repeats):
        for label, options in _configs(args):
            fanout.log(f"doorbell: run {repeat + 1}/{args.repeats}, {label}")
            argv = [
                "--devices", str(args.devices), "--rates", args.rates,
                "--step-seconds", str(args.step_seconds), "--fanout-reps", "0", "--all-steps",
                "--broker-prefix", f"chinwag-doorbell-{os.getpid()}", *options,
            ]  # fmt: skip
            result = fanout.run(fanout.parse_args(argv), argv)
            result["repeat"] = repeat
            result["label"] = label
            runs.append(result)
    return runs


def _by_rate(runs: list[dict[str, Any]], label: str) -> dict[int, list[dict[str, Any]]]:
    rows: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        if run["label"] == label:
            for step in run["load"]["steps"]:
                rows.setdefault(step["offered"], []).append(step)
    return rows


def _median(steps: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in steps))


def write_markdown(path: Path, runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    tables = {label: _by_rate(runs, label) for label in (MEMORY, DOORBELL, BOTH)}
    memory = tables[MEMORY]
    info = runs[0]["machine"]
    repeats = max(r["repeat"] for r in runs) + 1
    devices = runs[0]["devices"]
    loads = [r["machine"]["loadavg"][0] for r in runs] + [r["load_end"][0] for r in runs]
    lines = [
        "# The Redis doorbell's cost on one node (`bench/doorbell.py`)",
        "",
        f"Command: `{runs[0]['doorbell_command']}`",
        "",
        f"Machine: {info['cores_logical']} logical cores, {info['memory_gib']} GiB, Python "
        f"{info['python']}, SQLite {info['sqlite']}; {info['date']}; speed probe "
        f"{info.get('speed_probe_ms', '—')} ms. Load average (1 min) "
        f"between {min(loads):.2f} and {max(loads):.2f} over the runs (the cores are shared "
        f"with other engineers' test suites). Server code: {runs[0]['server_code']}.",
        "",
        f"Each row is the median over {repeats} run(s) per configuration, alternated. "
        "The Redis broker also becomes the default home of the rate-limit counters "
        "(`CHINWAG_RATE_LIMIT_URL` unset), so the doorbell alone is measured with the "
        "counters kept in memory, and the default with both in Redis. One "
        f"`chinwag serve` on SQLite; {devices} devices in {devices // 2} 1:1 pairs "
        f"plus {devices} idle; {runs[0]['step_seconds']:.0f} s per step. CPU is in cores; "
        "ms/msg is the server's CPU per message sent.",
        "",
        "| offered msg/s | broker | delivered msg/s | p50 ms | p99 ms | max ms "
        "| server CPU | server CPU ms/msg | loop waiting for a CPU | load (1 min) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in sorted(set().union(*tables.values())):
        for name, table in tables.items():
            steps = table.get(rate)
            if not steps:
                lines.append(f"| {rate:,} | {name} | not reached | | | | | | | |")
                continue
            lines.append(
                f"| {rate:,} | {name} | {_median(steps, 'delivered_rate'):,.0f} "
                f"| {_median(steps, 'p50_ms'):.1f} | {_median(steps, 'p99_ms'):.1f} "
                f"| {_median(steps, 'max_ms'):.0f} | {_median(steps, 'server_cpu'):.2f} "
                f"| {_median(steps, 'server_cpu_ms_per_msg'):.3f} "
                f"| {statistics.median(s['node_wait'][0] for s in steps):.0%} "
                f"| {statistics.median(s['load_after'][0] for s in steps):.2f} |"
            )
        for name in (DOORBELL, BOTH):
            if not (memory.get(rate) and tables[name].get(rate)):
                continue
            base = _median(memory[rate], "server_cpu_ms_per_msg")
            extra = _median(tables[name][rate], "server_cpu_ms_per_msg") - base
            lines.append(
                f"| | **{name} minus memory://** | | | | | "
                f"| **{extra * 1e3:+.0f} µs ({extra / max(1e-9, base):+.0%})** | | |"
            )
    lines += ["", "## Every run", ""]
    for run in runs:
        lines.append(
            f"- run {run['repeat'] + 1}, {run['label']}: load "
            f"{fmt_load(run['machine']['loadavg'])} → {fmt_load(run['load_end'])}; "
            + "; ".join(
                f"{s['offered']:,} msg/s: {s['delivered_rate']:,.0f} delivered/s, "
                f"p99 {s['p99_ms']:.1f} ms, {s['server_cpu_ms_per_msg']:.3f} ms CPU/msg"
                for s in run["load"]["steps"]
            )
        )
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for label, colour in ((MEMORY, "tab:blue"), (DOORBELL, "tab:orange"), (BOTH, "tab:red")):
        table = _by_rate(runs, label)
        rates = sorted(table)
        ax1.plot(rates, [_median(table[r], "p99_ms") for r in rates], marker="o", color=colour,
                 label=f"p99, {label}")  # fmt: skip
        ax1.plot(rates, [_median(table[r], "p50_ms") for r in rates], marker="x", color=colour,
                 linestyle="--", label=f"p50, {label}")  # fmt: skip
        ax2.plot(rates, [_median(table[r], "server_cpu_ms_per_msg") for r in rates],
                 marker="o", color=colour, label=label)  # fmt: skip
    ax1.set_yscale("log")
    ax1.set_xlabel("offered messages/s")
    ax1.set_ylabel("send → other device (ms)")
    ax1.set_title("1:1 latency, one node")
    ax1.legend(fontsize=8)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("offered messages/s")
    ax2.set_ylabel("server CPU per message (ms)")
    ax2.set_title("server CPU per message")
    ax2.legend(fontsize=8)
    loads = [r["machine"]["loadavg"][0] for r in runs] + [r["load_end"][0] for r in runs]
    fig.suptitle(
        f"chinwag: memory:// vs redis:// broker, one node, SQLite; {runs[0]['machine']['date']}, "
        f"load {min(loads):.1f} to {max(loads):.1f} on {runs[0]['machine']['cores_logical']} cores",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per broker, alternated")
    parser.add_argument("--out", type=Path, default=fanout.RESULTS / "doorbell")
    parser.add_argument("--from-json", type=Path, help="only re-render a saved doorbell.json")
    args = parser.parse_args(argv)
    runs = orjson.loads(args.from_json.read_bytes()) if args.from_json else _runs(args)
    runs[0].setdefault(
        "doorbell_command",
        shlex.join([".venv/bin/python", "bench/doorbell.py", *(argv or sys.argv[1:])]),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md, png, raw = (args.out.with_suffix(s) for s in (".md", ".png", ".json"))
    write_markdown(md, runs, args)
    write_plot(png, runs, args)
    if not args.from_json:
        raw.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))
    fanout.log(f"wrote {md}, {png}, {raw}")


if __name__ == "__main__":
    main()
