"""The abuse suite's figures: what each attack sent, what was refused, what it cost others.

    .venv/bin/python bench/abuse.py              # tests/abuse once (~2-3 min)
    .venv/bin/python bench/abuse.py --runs 3     # three times: the worst run per attack counts

It runs ``pytest tests/abuse`` (each attack against its own ``chinwag serve`` with default
limits, four legitimate pairs each sending 12.5 msg/s each way throughout; the attacks
through the send path on SQLite and on PostgreSQL, the others on SQLite) with
``CHINWAG_ABUSE_FIGURES`` set, so every test appends one line of figures: attacker requests
sent and refused (by refusal), the pair's send -> delivery p50 and p99, the server's CPU
during the attack (% of one core), how long its loop thread waited for a CPU meanwhile
(``/proc/<pid>/schedstat``: the machine's share of the latency) and its peak RSS
(VmHWM). Then it writes ``bench/results/abuse.md`` (table, pass/fail per run, load average) and
``bench/results/abuse.png`` (p50/p99 per attack against the 100 ms bar, and peak RSS
against 400 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def run_suite(figures: Path, junit: Path, extra: list[str]) -> int:
    env = {**os.environ, "CHINWAG_ABUSE_FIGURES": str(figures)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "tests/abuse", *extra]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def failures(junit: Path) -> set[str]:
    import xml.etree.ElementTree as ET

    failed = set()
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(case.get("name", "").removeprefix("test_"))
    return failed


def worst(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per attack, the run with the highest p99 (the figure the bar is about)."""
    by_attack: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen = by_attack.get(row["attack"])
        if seen is None or row["legit_p99_ms"] > seen["legit_p99_ms"]:
            by_attack[row["attack"]] = row
    return by_attack


def table(rows: dict[str, dict[str, Any]], failed: dict[str, int], runs: int) -> str:
    lines = [
        "| attack | attacker sent | refused (how) | legit msgs | p50 ms | p99 ms | server CPU % "
        f"| server waited for a CPU ms | peak RSS MiB | failed runs of {runs} |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        how = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["refusals"].items()))
        lines.append(
            f"| {name.replace('_', ' ')} | {r['attacker_sent']:,} | {r['attacker_refused']:,} "
            f"({how}) | {r['legit_messages']} | {r['legit_p50_ms']} | **{r['legit_p99_ms']}** "
            f"| {r.get('server_cpu_pct', '')} | {r.get('server_wait_ms', '')} "
            f"| {r['peak_rss_mib']} | {failed.get(name, 0)} |"
        )
    return "\n".join(lines)


def _label(name: str) -> str:
    """Short enough for the axis, keeping the engine of an attack run on both."""
    text, _, engine = name.replace("_", " ").partition("[")
    suffix = f" [{engine}" if engine else ""
    return text[: 38 - len(suffix)].rstrip() + suffix


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [_label(n) for n in rows]
    p50 = [r["legit_p50_ms"] for r in rows.values()]
    p99 = [r["legit_p99_ms"] for r in rows.values()]
    rss = [r["peak_rss_mib"] for r in rows.values()]
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(13, 0.45 * len(names) + 2), sharey=True)
    ys = range(len(names))
    lat.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="tab:red")
    lat.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="tab:blue")
    lat.axvline(100, color="black", linestyle="--", label="bar: p99 < 100 ms")
    lat.set_yticks(list(ys), names)
    lat.set_xlabel("legitimate send -> delivery (ms), worst run")
    lat.legend(loc="lower right")
    mem.barh(list(ys), rss, color="tab:green")
    mem.axvline(400, color="black", linestyle="--", label="bar: 400 MB")
    mem.set_xlabel("server peak RSS (MiB)")
    mem.legend(loc="lower right")
    fig.suptitle("One hostile client at full speed vs a legitimate pair (tests/abuse)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (-k …)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    failed: dict[str, int] = {}
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            figures, junit = Path(tmp) / f"figures{run}.jsonl", Path(tmp) / f"junit{run}.xml"
            run_suite(figures, junit, args.pytest_args)
            if figures.exists():
                rows += [json.loads(line) for line in figures.read_text().splitlines()]
            for name in failures(junit):
                failed[name] = failed.get(name, 0) + 1
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    by_attack = worst(rows)
    header = (
        f"# Abuse suite figures\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"commit {commit}, {args.runs} run(s), {os.cpu_count()} cores, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Worst run per attack.\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "abuse.md").write_text(header + table(by_attack, failed, args.runs) + "\n")
    (args.out / "abuse.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(by_attack, args.out / "abuse.png")
    print((args.out / "abuse.md").read_text())


if __name__ == "__main__":
    main()
