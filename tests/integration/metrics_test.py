"""Integration: the cluster's metrics through the launcher. Census MMOE with 2
servers and 2 workers (more epochs than the config's, so training lasts long
enough to scrape): the metrics address comes from RUN_DIR/cluster.json, real
HTTP GETs during training are parsed with Debian's python3-prometheus-client,
the names, types and labels the scheduler exports are all there, training
examples grow between two scrapes, a garbage and a silent client do not stop
the server, and after the run metrics.jsonl and progress.jsonl carry the
fields the HTML report and the launcher's ETA read. With
cluster.metrics_port=-1 there is no metrics server and cluster.json names
none."""

import json
import math
import re
import socket
import subprocess
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json, read_progress, wait_for

CONFIG = CONFIGS / "census_mmoe.pbtxt"
EPOCHS = 30
TASKS = {"income", "never_married"}
NODES = {("scheduler", "0"), ("server", "0"), ("server", "1"), ("worker", "0"), ("worker", "1")}

# Family name (as the parser names it: a counter without "_total") -> type.
EXPECTED_TYPES = {
    "mtps_train_examples": "counter",
    "mtps_train_examples_per_second": "gauge",
    "mtps_train_epoch": "gauge",
    "mtps_train_loss": "gauge",
    "mtps_train_auc": "gauge",
    "mtps_client_pull_latency_seconds": "histogram",
    "mtps_client_push_latency_seconds": "histogram",
    "mtps_data_bad_lines_skipped": "counter",
    "mtps_server_requests": "counter",
    "mtps_server_request_errors": "counter",
    "mtps_server_pull_keys": "counter",
    "mtps_server_push_keys": "counter",
    "mtps_server_rows": "gauge",
    "mtps_process_resident_memory_bytes": "gauge",
    "mtps_job_restarts": "gauge",
    "mtps_job_epoch": "gauge",
    "mtps_job_epochs": "gauge",
    "mtps_job_examples_expected": "gauge",
    "mtps_job_examples_per_second": "gauge",
    "mtps_job_workers_done": "gauge",
    "mtps_checkpoint_pause_seconds": "histogram",
    "mtps_checkpoint_write_seconds": "histogram",
    "mtps_metrics_snapshots_rejected": "counter",
}


def scrape(url):
    """(families by name, Content-Type) of one GET of url."""
    with urllib.request.urlopen(url, timeout=10) as response:
        content_type = response.headers.get("Content-Type")
        text = response.read().decode("utf-8")
    return {f.name: f for f in text_string_to_metric_families(text)}, content_type


def try_scrape(url):
    try:
        return scrape(url)[0]
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def samples(families, family, name=None):
    """The samples of `family` (named `name`, default the family's own
    sample name) as (labels, value)."""
    f = families.get(family)
    if f is None:
        return []
    want = name or (family + "_total" if f.type == "counter" else family)
    return [(s.labels, s.value) for s in f.samples if s.name == want]


def total_examples(families):
    return sum(v for _, v in samples(families, "mtps_train_examples"))


class MetricsTest(RunDirTestCase):
    def test_metrics_during_and_after_training(self):
        run_dir = self.tmp / "run"
        launcher = self.start_launcher(
            CONFIG, servers=2, workers=2, run_dir=run_dir,
            extra=["--set", "train.epochs=%d" % EPOCHS,
                   "--set", "cluster.heartbeat_interval_ms=200"],
            timeout=400)
        cluster_json = run_dir / "cluster.json"
        self.assertTrue(wait_for(lambda: launcher.poll() is not None or cluster_json.exists(), 120),
                        "no cluster.json:\n" + self.launcher_output(run_dir))
        self.assertIsNone(launcher.poll(), self.launcher_output(run_dir))
        url = read_json(cluster_json)["metrics"]
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/metrics$")

        # A first scrape with training under way and every node reporting.
        first = {}

        def all_nodes_report():
            families = try_scrape(url)
            if families is None:
                return False
            nodes = {(l["role"], l["rank"])
                     for l, _ in samples(families, "mtps_process_resident_memory_bytes")}
            if nodes == NODES and total_examples(families) > 0:
                first["families"] = families
                return True
            return launcher.poll() is not None

        self.assertTrue(wait_for(all_nodes_report, 120), self.launcher_output(run_dir))
        self.assertIn("families", first, "training ended before a scrape saw every node:\n" +
                      self.launcher_output(run_dir))
        families = first["families"]
        examples_before = total_examples(families)

        # A garbage client and a silent one hold nothing up.
        address = (urllib.request.urlparse(url).hostname, urllib.request.urlparse(url).port)
        garbage = socket.create_connection(address, timeout=10)
        self.addCleanup(garbage.close)
        garbage.sendall(bytes(range(256)) * 4)
        silent = socket.create_connection(address, timeout=10)
        self.addCleanup(silent.close)
        silent.sendall(b"GET /metr")

        # A later scrape sees more examples (still during training).
        later = {}

        def reported(families):
            # Every worker sent a progress report since: its loss and AUC are known.
            values = [v for _, v in samples(families, "mtps_train_auc") +
                      samples(families, "mtps_train_loss")]
            return len(values) == 8 and not any(math.isnan(v) for v in values)

        def examples_grew():
            families = try_scrape(url)
            if (families is not None and total_examples(families) > examples_before and
                    reported(families)):
                later["families"] = families
                return True
            return launcher.poll() is not None

        self.assertTrue(wait_for(examples_grew, 120))
        self.assertIn("families", later, "no scrape after %d examples before the job ended:\n%s" %
                      (examples_before, self.launcher_output(run_dir)))
        workers_done = samples(later["families"], "mtps_job_workers_done")
        self.assertEqual(len(workers_done), 1)

        # The content type, other paths and methods, on the real server.
        _, content_type = scrape(url)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        with self.assertRaises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url.replace("/metrics", "/nothing"), timeout=10)
        self.assertEqual(missing.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as post:
            urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"),
                                   timeout=10)
        self.assertEqual(post.exception.code, 405)

        self.check_families(later["families"])

        self.assertEqual(launcher.wait(timeout=400), 0, self.launcher_output(run_dir))
        summary = read_json(run_dir / "summary.json")
        examples, _ = harness.expected_work(CONFIG, 2, EPOCHS)
        self.assertEqual(summary["train"]["examples"], examples)
        self.check_metrics_jsonl(run_dir, examples)
        self.check_progress(run_dir, examples)
        self.assert_nothing_left(run_dir)

    def check_families(self, families):
        for name, kind in EXPECTED_TYPES.items():
            self.assertIn(name, families, "missing family %s" % name)
            self.assertEqual(families[name].type, kind, name)
            self.assertTrue(families[name].documentation, "%s has no HELP" % name)
        # Every sample of every family is labelled with its node.
        for name, family in families.items():
            self.assertTrue(name.startswith("mtps_"), name)
            for s in family.samples:
                self.assertIn((s.labels.get("role"), s.labels.get("rank")), NODES, s)

        def nodes_of(family, name=None):
            return {(l["role"], l["rank"]) for l, _ in samples(families, family, name)}

        workers = {("worker", "0"), ("worker", "1")}
        servers = {("server", "0"), ("server", "1")}
        self.assertEqual(nodes_of("mtps_process_resident_memory_bytes"), NODES)
        for _, v in samples(families, "mtps_process_resident_memory_bytes"):
            self.assertGreater(v, 1 << 20)
        for family in ("mtps_train_examples", "mtps_train_examples_per_second", "mtps_train_epoch",
                       "mtps_data_bad_lines_skipped"):
            self.assertEqual(nodes_of(family), workers, family)
        for _, v in samples(families, "mtps_train_epoch"):
            self.assertTrue(1 <= v <= EPOCHS, v)
        for family in ("mtps_train_loss", "mtps_train_auc"):
            got = {(l["rank"], l["task"]) for l, _ in samples(families, family)}
            self.assertEqual(got, {(r, t) for r in ("0", "1") for t in TASKS}, family)
        for labels, v in samples(families, "mtps_train_auc"):
            self.assertTrue(0.5 < v <= 1.0, (labels, v))  # learning, on training predictions
        for labels, v in samples(families, "mtps_train_loss"):
            self.assertTrue(0 < v < 1, (labels, v))
        # Server side: requests and errors by op, keys, rows.
        ops = {(l["rank"], l["op"]) for l, _ in samples(families, "mtps_server_requests")}
        for rank in ("0", "1"):
            for op in ("PULL_SPARSE", "PUSH_SPARSE", "PULL_DENSE", "PUSH_DENSE"):
                self.assertIn((rank, op), ops)
        requests = {(l["rank"], l["op"]): v for l, v in samples(families, "mtps_server_requests")}
        self.assertGreater(requests[("0", "PUSH_SPARSE")], 0)
        self.assertEqual(nodes_of("mtps_server_request_errors"), servers)
        for family in ("mtps_server_pull_keys", "mtps_server_push_keys", "mtps_server_rows"):
            self.assertEqual(nodes_of(family), servers, family)
            for _, v in samples(families, family):
                self.assertGreater(v, 0, family)
        # The workers' client latencies: histograms by op with +Inf and counts.
        for family in ("mtps_client_pull_latency_seconds", "mtps_client_push_latency_seconds"):
            self.assertEqual(nodes_of(family, family + "_count"), workers)
            buckets = samples(families, family, family + "_bucket")
            self.assertIn("+Inf", {l["le"] for l, _ in buckets})
            counts = {(l["rank"], l["op"]): v
                      for l, v in samples(families, family, family + "_count")}
            infs = {(l["rank"], l["op"]): v for l, v in buckets if l["le"] == "+Inf"}
            self.assertEqual(counts, infs, family)
            sparse = [v for (rank, op), v in counts.items() if op.endswith("_SPARSE")]
            self.assertEqual(len(sparse), 2, counts)
            self.assertTrue(all(v > 0 for v in sparse), counts)
            for labels, total in samples(families, family, family + "_sum"):
                self.assertGreater(total, 0, labels)
        # The scheduler's own.
        self.assertEqual(nodes_of("mtps_job_restarts"), {("scheduler", "0")})
        self.assertEqual(samples(families, "mtps_job_restarts")[0][1], 0)
        self.assertEqual(samples(families, "mtps_job_epochs")[0][1], EPOCHS)
        self.assertEqual(samples(families, "mtps_metrics_snapshots_rejected")[0][1], 0)
        for family in ("mtps_checkpoint_pause_seconds", "mtps_checkpoint_write_seconds"):
            self.assertEqual(nodes_of(family, family + "_count"), {("scheduler", "0")})

    def check_metrics_jsonl(self, run_dir, examples):
        lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()
                 if l.strip()]
        progress = read_progress(run_dir / "progress.jsonl")
        self.assertGreaterEqual(len(lines), 2)
        self.assertEqual(len(lines), len(progress))  # the same tick
        for line, p in zip(lines, progress):
            self.assertEqual(list(line)[:3], ["t", "examples", "examples_per_sec"], line)
            self.assertEqual(line["t"], p["t"])
            self.assertEqual(line["examples"], p["examples"])
            self.assertEqual(set(line["loss"]), TASKS)
            for v in line["auc"].values():
                self.assertTrue(0 <= v <= 1, line)
            self.assertEqual([s["rank"] for s in line["servers"]], [0, 1])
            # Workers appear once they reported progress (an early line may lack one).
            ranks = [w["rank"] for w in line["workers"]]
            self.assertTrue(ranks and ranks == sorted(set(ranks)) and set(ranks) <= {0, 1}, line)
            self.assertEqual(sum(w["examples"] for w in line["workers"]), line["examples"])
            for key in ("epoch", "loss", "auc", "servers", "workers"):
                self.assertIn(key, line)
        self.assertEqual(
            [l["examples"] for l in lines], sorted(l["examples"] for l in lines))
        # Worker w trains the lines i with i % 2 == w, every epoch.
        train_lines = len(harness.data_lines(harness.config_data_path(CONFIG, "train_path")))
        shares = [len(range(w, train_lines, 2)) for w in range(2)]
        last = lines[-1]
        self.assertEqual([w["rank"] for w in last["workers"]], [0, 1])
        self.assertEqual(last["examples"], examples)
        self.assertEqual(last["epoch"], EPOCHS)
        self.assertEqual(set(last["auc"]), TASKS)
        for s in last["servers"]:
            self.assertEqual(set(s), {"rank", "rows", "memory_bytes", "requests_total",
                                      "pull_keys_total", "push_keys_total"}, s)
            self.assertGreater(s["rows"], 0)
            self.assertGreater(s["push_keys_total"], 0)
            self.assertGreater(s["requests_total"], 0)
            self.assertGreater(s["memory_bytes"], 1 << 20)
        for w in last["workers"]:
            self.assertEqual(set(w), {"rank", "examples", "examples_per_sec", "memory_bytes"}, w)
            self.assertEqual(w["examples"], shares[w["rank"]] * EPOCHS, w)
            self.assertGreater(w["memory_bytes"], 1 << 20)

    def check_progress(self, run_dir, examples):
        records = read_progress(run_dir / "progress.jsonl")
        self.assertTrue(records)
        epochs = [r["epoch"] for r in records]
        self.assertEqual(epochs, sorted(epochs))
        self.assertTrue(all(1 <= e <= EPOCHS for e in epochs), epochs)
        self.assertEqual(epochs[-1], EPOCHS)
        for r in records:
            # The keys of before, in their order, then the ETA's.
            self.assertEqual(list(r)[:6], ["t", "examples", "examples_per_sec", "loss",
                                           "workers_done", "num_workers"], r)
            self.assertEqual(r["epochs"], EPOCHS)
            if "examples_total" in r:
                self.assertEqual(r["examples_total"], examples, r)
        # Known once every worker read its first epoch, and then on every line.
        known = [i for i, r in enumerate(records) if "examples_total" in r]
        self.assertTrue(known)
        self.assertEqual(known, list(range(known[0], len(records))))
        self.assertLessEqual(records[known[0]]["examples"], examples)

    def test_restarts_flag_is_the_restarts_gauge(self):
        # A scheduler alone serves its metrics from its start, before anyone registers.
        run_dir = self.tmp / "alone"
        run_dir.mkdir()
        log = open(self.tmp / "scheduler.log", "w+")
        self.addCleanup(log.close)
        node = subprocess.Popen(
            [harness.BINARY, "--role=scheduler", "--config=%s" % CONFIG, "--num_servers=1",
             "--num_workers=1", "--run_dir=%s" % run_dir, "--restarts=4",
             "--set=cluster.register_timeout_ms=120000"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (node.kill(), node.wait()))
        found = {}

        def announced():
            log.seek(0)
            match = re.search(r"cluster metrics at (http://\S+)", log.read())
            if match:
                found["url"] = match.group(1)
            return bool(match) or node.poll() is not None

        self.assertTrue(wait_for(announced, 60))
        self.assertIn("url", found, (self.tmp / "scheduler.log").read_text())
        families, _ = scrape(found["url"])
        self.assertEqual(samples(families, "mtps_job_restarts"),
                         [({"role": "scheduler", "rank": "0"}, 4.0)])
        self.assertEqual(samples(families, "mtps_train_examples"), [])  # no worker yet
        # A negative count is a bad flag.
        bad = subprocess.run([harness.BINARY, "--role=scheduler", "--restarts=-1"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--restarts must be >= 0 (got -1)", bad.stderr)

    def test_metrics_port_off(self):
        run_dir = self.tmp / "off"
        result = self.run_launcher(CONFIG, servers=1, workers=1, run_dir=run_dir,
                                   extra=["--set", "train.epochs=1",
                                          "--set", "cluster.metrics_port=-1"])
        self.assertEqual(result.returncode, 0, describe(result, run_dir))
        self.assertNotIn("metrics", read_json(run_dir / "cluster.json"))
        # metrics.jsonl is the scheduler's file either way.
        self.assertTrue((run_dir / "metrics.jsonl").exists())
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
