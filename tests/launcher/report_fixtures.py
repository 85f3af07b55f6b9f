"""Fake run dirs for the report tests (report_test.py, report_browser_test.py):
progress.jsonl, metrics.jsonl, summary.json and launch.json in the formats
the scheduler and the launcher write, made from a seeded random walk so that
each test can derive what the page must show from the records it wrote."""

import json
import random
from pathlib import Path

TASKS = ("income", "never_married")


def write_jsonl(path, records, extra_lines=()):
    """records as JSON lines, then extra_lines (raw text, e.g. malformed)."""
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        for line in extra_lines:
            f.write(line + "\n")


def make_run(run_dir, steps=60, tasks=TASKS, servers=2, workers=2, epochs=2, metrics=True,
             new_fields=True, restart_at=None, failover_at=None, result="success",
             interval=0.5, seed=1):
    """Writes a run into run_dir (created); returns what it wrote:
    {"progress": [...], "events": [...], "metrics": [...], "summary": ...}.

    restart_at: the step at which the scheduler restarted (its clock and the
    examples start again from a checkpoint); failover_at: the step at which
    server 1 failed over (a failover event, then a rejoined one)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per_step = 9300
    total = per_step * steps
    progress, events, lines, metric_lines = [], [], [], []
    t, examples = 0.0, 0
    start = {"event": "training", "t": 0.05}
    events.append(start)
    lines.append(start)
    rows = [0] * servers
    requests = [0] * servers
    for step in range(steps):
        if restart_at is not None and step == restart_at:
            t, examples = 0.0, examples // 2
            resumed = {"event": "training", "t": 0.4, "resumed_from_checkpoint": 3,
                       "checkpoint_step": 41}
            events.append(resumed)
            lines.append(resumed)
        t += interval
        examples += per_step
        rate = per_step / interval * (0.85 + 0.3 * rng.random())
        loss = {task: round(0.2 + (0.5 - 0.2 * i) * 2.7 ** (-step / 12.0) +
                            0.01 * rng.random(), 6) for i, task in enumerate(tasks)}
        record = {"t": round(t, 3), "examples": examples, "examples_per_sec": round(rate, 1),
                  "loss": loss, "workers_done": workers if step == steps - 1 else 0,
                  "num_workers": workers}
        if new_fields:
            record["epoch"] = min(epochs, 1 + step * epochs // steps)
            record["epochs"] = epochs
            if step * epochs >= steps:  # known once the first epoch is over
                record["examples_total"] = total
        progress.append(record)
        lines.append(record)
        if failover_at is not None and step == failover_at:
            for event in ({"event": "failover", "t": round(t + 0.05, 3), "server": "server-1",
                           "node": 2, "promoted_partitions": [1], "epoch": 7},
                          {"event": "rejoined", "t": round(t + 0.3, 3), "server": "server-1",
                           "partition": 1, "epoch": 9}):
                events.append(event)
                lines.append(event)
        for s in range(servers):
            rows[s] += int(40000 * (1 + s * 0.3) * 2.7 ** (-step / 20.0))
            requests[s] += int(400 * (1 + 0.2 * s) + 50 * rng.random())
        metric_lines.append({
            "t": round(t, 3), "examples": examples, "examples_per_sec": round(rate, 1),
            "epoch": record.get("epoch", 1), "loss": loss,
            "auc": {task: round(0.95 - (0.3 - 0.05 * i) * 2.7 ** (-step / 10.0), 6)
                    for i, task in enumerate(tasks)},
            "servers": [{"rank": s, "rows": rows[s], "memory_bytes": rows[s] * 120,
                         "requests_total": requests[s], "pull_keys_total": requests[s] * 900,
                         "push_keys_total": requests[s] * 880} for s in range(servers)],
            "workers": [{"rank": w, "examples": examples // workers,
                         "examples_per_sec": round(rate / workers * (1 + 0.05 * w), 1),
                         "memory_bytes": 10 ** 8} for w in range(workers)]})
    write_jsonl(run_dir / "progress.jsonl", lines)
    if metrics:
        write_jsonl(run_dir / "metrics.jsonl", metric_lines)
    summary = None
    if result == "success":
        summary = {"model": "mmoe",
                   "eval": {task: {"auc": 0.93 + 0.06 * i, "logloss": 0.13 - 0.04 * i,
                                   "examples": 13942} for i, task in enumerate(tasks)},
                   "train": {"examples": examples, "seconds": t,
                             "examples_per_sec": examples / t},
                   "cluster": {"servers": servers, "workers": workers}}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    nodes = [{"role": "scheduler", "rank": 0, "exit_code": 0, "stopped_by_launcher": False}]
    nodes += [{"role": "server", "rank": s, "exit_code": 0, "stopped_by_launcher": False}
              for s in range(servers)]
    nodes += [{"role": "worker", "rank": w, "exit_code": 0, "stopped_by_launcher": False}
              for w in range(workers)]
    if result == "failed":
        nodes[-1]["exit_code"] = 1
    launch = {"backend": "local", "config": "/repo/configs/census_mmoe.pbtxt",
              "run_dir": str(run_dir), "start_time": 1.7e9, "end_time": 1.7e9 + t + 3,
              "nodes": nodes, "restarts": 0 if restart_at is None else 1, "result": result}
    (run_dir / "launch.json").write_text(json.dumps(launch, indent=2))
    return {"progress": progress, "events": events,
            "metrics": metric_lines if metrics else [], "summary": summary}
