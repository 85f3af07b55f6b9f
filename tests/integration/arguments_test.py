"""Integration: bad launcher arguments give a clear message and exit code 2,
before anything is started or created."""

import shutil
import subprocess
import sys
from pathlib import Path

import harness
from harness import RunDirTestCase


class ArgumentsTest(RunDirTestCase):
    def setUp(self):
        super().setUp()
        # Never read: every case fails before a node starts.
        self.config = self.tmp / "job.pbtxt"
        self.config.write_text("# placeholder\n")

    def launch(self, *args, launcher=None):
        return subprocess.run([sys.executable, launcher or harness.LAUNCHER] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    def assert_usage_error(self, result, *expected):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        for text in expected:
            self.assertIn(text, result.stderr)
        self.assertFalse((self.tmp / "run").exists(), "run dir created despite the error")

    def valid_args(self, **changes):
        args = {"--config": str(self.config), "--servers": "1", "--workers": "1",
                "--run-dir": str(self.tmp / "run"), "--binary": harness.BINARY}
        args.update(changes)
        argv = ["local"]
        for flag, value in args.items():
            if value is not None:
                argv += [flag, value]
        return argv

    def test_missing_backend(self):
        self.assert_usage_error(self.launch(), "BACKEND")

    def test_unknown_backend(self):
        self.assert_usage_error(self.launch("cloud"), "cloud")

    def test_missing_config(self):
        self.assert_usage_error(self.launch(*self.valid_args(**{"--config": None})), "--config")

    def test_config_not_found(self):
        missing = str(self.tmp / "missing.pbtxt")
        self.assert_usage_error(self.launch(*self.valid_args(**{"--config": missing})), missing)

    def test_bad_servers(self):
        for value in ("0", "-1", "two"):
            with self.subTest(value=value):
                self.assert_usage_error(self.launch(*self.valid_args(**{"--servers": value})),
                                        "--servers", value)

    def test_bad_workers(self):
        self.assert_usage_error(self.launch(*self.valid_args(**{"--workers": "0"})), "--workers")

    def test_bad_set(self):
        for value in ("train.epochs", "=3", "train.epochs=1;train.seed=2"):
            with self.subTest(value=value):
                self.assert_usage_error(self.launch(*self.valid_args(), "--set", value), "--set")

    def test_bad_timeout(self):
        for value in ("0", "-5", "soon"):
            with self.subTest(value=value):
                self.assert_usage_error(self.launch(*self.valid_args(), "--timeout", value),
                                        "--timeout")

    def test_binary_not_executable(self):
        missing = str(self.tmp / "no-node")
        self.assert_usage_error(self.launch(*self.valid_args(**{"--binary": missing})), missing)

    def test_default_binary_missing_says_build_first(self):
        # A copy of the launcher in a tree that has no build/.
        copy = self.tmp / "tree" / "launcher" / "mtps-launch"
        copy.parent.mkdir(parents=True)
        shutil.copy(harness.LAUNCHER, copy)
        shutil.copytree(Path(harness.LAUNCHER).parent / "mtps_launch", copy.parent / "mtps_launch",
                        ignore=shutil.ignore_patterns("__pycache__"))
        result = self.launch(*self.valid_args(**{"--binary": None}), launcher=str(copy))
        self.assert_usage_error(result, "build first", str(self.tmp / "tree" / "build"))


if __name__ == "__main__":
    harness.main()
