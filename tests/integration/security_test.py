"""Integration: a job under CURVE (mtps-launch --secure) refuses a hostile
peer -- a client with no key, one with a random key, and one with a job
node's key speaking for another node -- and completes.

The probes are real ZeroMQ clients (Debian's python3-zmq) against the
running job's sockets; their messages are encoded here (a few protobuf
varint fields of mtps.wire.Meta), independently of the C++ code."""

import os
import stat
import subprocess

import zmq

import harness
from harness import CONFIGS, RunDirTestCase, read_json, wait_for

CONFIG = CONFIGS / "census_mmoe.pbtxt"
# mtps.wire.Meta fields and values (proto/wire.proto).
OP, REQUEST_ID, SENDER, EPOCH, TIMEOUT_MS, STATUS, STATUS_MESSAGE = 1, 2, 3, 4, 5, 7, 8
OP_EVAL_REPORT, OP_PULL_SPARSE = 5, 10
PERMISSION_DENIED = 10
# How long a refused probe waits for an answer that must not come.
SILENCE_MS = 2000


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_meta(fields):
    return b"".join(varint(number << 3) + varint(value) for number, value in fields)


def decode_meta(data):
    """The varint and string fields of a Meta, by number (last one wins)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields[number], i = read_varint(data, i)
        elif wire_type == 2:
            length, i = read_varint(data, i)
            fields[number], i = data[i:i + length], i + length
        elif wire_type == 1:
            i += 8
        elif wire_type == 5:
            i += 4
        else:
            raise ValueError("wire type %d" % wire_type)
    return fields


def read_varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def read_key_file(path):
    entries = dict(line.split() for line in path.read_text().splitlines()
                   if line and not line.startswith("#"))
    return entries["public"].encode(), entries["secret"].encode()


class SecurityTest(RunDirTestCase):
    def setUp(self):
        super().setUp()
        self.context = zmq.Context()
        self.addCleanup(self.context.destroy, 0)

    def request(self, endpoint, frames, curve=None):
        """Sends one request from a fresh DEALER; the reply's frames, or None
        when nothing came back within SILENCE_MS."""
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            server_key, public, secret = curve
            socket.curve_serverkey = server_key
            socket.curve_publickey = public
            socket.curve_secretkey = secret
        socket.connect(endpoint)
        try:
            socket.send_multipart(frames)
            if socket.poll(SILENCE_MS, zmq.POLLIN):
                return socket.recv_multipart()
            return None
        finally:
            socket.close(0)

    def test_hostile_peers_are_refused_and_the_job_completes(self):
        run_dir = self.tmp / "run"
        servers, workers = 2, 2
        launcher = self.start_launcher(CONFIG, servers, workers, run_dir,
                                       extra=["--secure", "--set", "train.epochs=30"], timeout=600)
        cluster = run_dir / "cluster.json"
        self.assertTrue(wait_for(cluster.exists, 120), self.launcher_output(run_dir))
        info = read_json(cluster)
        nodes = {(n["role"], n["rank"]): n for n in info["nodes"]}
        endpoint = lambda n: "tcp://%s:%d" % (n["host"], n["port"])
        scheduler, server = nodes[("scheduler", 0)], nodes[("server", 0)]
        keys = run_dir / "keys"

        # The keys are owner-only.
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o700)
        for path in keys.iterdir():
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
        public = dict(line.split() for line in (keys / "public.keys").read_text().splitlines()
                      if line and not line.startswith("#"))
        self.assertEqual(sorted(public), sorted(
            ["scheduler"] + ["server-%d" % r for r in range(servers)] +
            ["worker-%d" % r for r in range(workers)]))

        # Requests with the job's epoch, as a worker sends them; the job runs
        # long enough (30 epochs, about 15 s) for every probe to find it running.
        worker1_id = 1 + servers + 1
        pull = encode_meta([(OP, OP_PULL_SPARSE), (REQUEST_ID, 7), (SENDER, worker1_id),
                            (EPOCH, info["cluster_epoch"]), (TIMEOUT_MS, 5000)])

        # worker-0's own key, claiming to be worker-1: refused by name.
        w0_public, w0_secret = read_key_file(keys / "worker-0.key")
        report = encode_meta([(OP, OP_EVAL_REPORT), (REQUEST_ID, 8), (SENDER, worker1_id),
                              (EPOCH, info["cluster_epoch"]), (TIMEOUT_MS, 5000)])
        for target, name, message in ((scheduler, "scheduler", report),
                                      (server, "server-0", pull)):
            reply = self.request(endpoint(target), [message],
                                 curve=(public[name].encode(), w0_public, w0_secret))
            self.assertIsNotNone(reply, "%s did not answer worker-0's key" % name)
            meta = decode_meta(reply[0])
            self.assertEqual(meta.get(STATUS), PERMISSION_DENIED, meta)
            self.assertIn(b"the key of worker-0 cannot speak for node %d" % worker1_id,
                          meta.get(STATUS_MESSAGE, b""))

        # No key: the CURVE handshake never completes, nothing is answered.
        self.assertIsNone(self.request(endpoint(server), [pull]))
        # A random key that knows the server's public key: ZAP refuses it.
        random_public, random_secret = zmq.curve_keypair()
        self.assertIsNone(self.request(
            endpoint(server), [pull],
            curve=(public["server-0"].encode(), random_public, random_secret)))
        launcher.wait(timeout=600)
        output = self.launcher_output(run_dir)
        self.assertEqual(launcher.returncode, 0, output)
        summary = read_json(run_dir / "summary.json")
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85, summary)
        # The servers logged the refused handshake (the random key).
        logs = "".join(p.read_text(errors="replace") for p in (run_dir / "logs").glob("*.log"))
        self.assertRegex(logs, r"refused a connection from .*: not a job key")
        self.assertRegex(logs, r"refused EVAL_REPORT claiming node %d" % worker1_id)

    def test_a_key_file_readable_by_others_is_refused(self):
        run_dir = self.tmp / "run"
        keys = run_dir / "keys"
        # The launcher writes fresh keys; a node given a world-readable copy
        # of them refuses to start, naming the file.
        copy = self.tmp / "keys"
        result = subprocess.run(
            [harness.BINARY, "--generate_keys=%s" % copy, "--num_servers=1", "--num_workers=1"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        os.chmod(copy / "worker-0.key", 0o644)
        result = subprocess.run(
            [harness.BINARY, "--role=worker", "--rank=0", "--scheduler=tcp://127.0.0.1:1",
             "--keys=%s" % copy, "--register_timeout_ms=1000"],
            capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("worker-0.key is readable by others (mode 644)", result.stderr)
        self.assertFalse(keys.exists())

    def test_curve_without_keys_is_refused_by_the_scheduler(self):
        result = subprocess.run(
            [harness.BINARY, "--role=scheduler", "--config=%s" % CONFIG,
             "--set=cluster.curve=true", "--run_dir=%s" % self.tmp],
            capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("cluster.curve is true but no --keys", result.stderr)


if __name__ == "__main__":
    harness.main()
