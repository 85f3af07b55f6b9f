#!/usr/bin/env python3
"""Tests tests/check_layering.py, the include check every build runs.

The real tree (with the layers CMake wrote for this build) must pass; copies
of it with one wrong include each must fail, naming the file, the line and
the rule. Usage: layering_test.py SOURCE_DIR BUILD_DIR/layers.txt
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = LAYERS = None
CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layering.py")


def run_check(root, layers):
    return subprocess.run([sys.executable, CHECK, "--root", root, "--layers", layers],
                          capture_output=True, text=True, timeout=120)


class LayeringTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mtps-layering-")
        self.root = os.path.join(self.tmp, "src")
        for folder in ("common", "ps", "worker", "launcher", "proto"):
            shutil.copytree(os.path.join(ROOT, folder), os.path.join(self.root, folder))
        for folder in ("unit", "bench", "reference", "fuzz"):
            shutil.copytree(os.path.join(ROOT, "tests", folder),
                            os.path.join(self.root, "tests", folder))
        self.layers = os.path.join(self.tmp, "layers.txt")
        shutil.copy(LAYERS, self.layers)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def add_line(self, rel, line):
        path = os.path.join(self.root, rel)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text + line + "\n")
        return text.count("\n") + 1  # the 1-based line number of the new line

    def expect_failure(self, *needles):
        result = run_check(self.root, self.layers)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for needle in needles:
            self.assertIn(needle, result.stdout)

    def test_the_tree_passes(self):
        result = run_check(ROOT, LAYERS)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")

    def test_server_including_worker_code_fails(self):
        line = self.add_line("ps/table/dense_store.h", '#include "worker/nn/eigen.h"')
        self.expect_failure(f'ps/table/dense_store.h:{line}: includes "worker/nn/eigen.h" of mtps_nn',
                            "mtps_table does not list")

    def test_common_including_ps_fails(self):
        line = self.add_line("common/eval/metrics.cc", '#include "ps/table/sparse_table.h"')
        self.expect_failure(f"common/eval/metrics.cc:{line}:", "of mtps_table", "mtps_eval")

    def test_an_undeclared_sibling_library_fails(self):
        # mtps_data does not list mtps_models, though both are in worker/.
        self.add_line("worker/data/example_reader.cc", '#include "worker/models/model.h"')
        self.expect_failure("worker/data/example_reader.cc:", "of mtps_models")

    def test_a_test_including_a_library_it_does_not_link_fails(self):
        self.add_line("tests/unit/wire_test.cc", '#include "ps/table/sparse_table.h"')
        self.expect_failure("tests/unit/wire_test.cc:", "wire_test does not list")

    def test_a_wrong_way_dependency_in_cmake_fails(self):
        with open(self.layers) as f:
            text = f.read()
        with open(self.layers, "w") as f:
            f.write(text.replace("mtps_scheduler|ps/scheduler/|",
                                 "mtps_scheduler|ps/scheduler/|mtps_models,"))
        self.expect_failure("mtps_scheduler depends on mtps_models (worker/models/)")

    def test_a_file_outside_every_library_fails(self):
        os.makedirs(os.path.join(self.root, "ps", "stray"))
        with open(os.path.join(self.root, "ps", "stray", "orphan.h"), "w") as f:
            f.write("// nothing\n")
        self.expect_failure("ps/stray/orphan.h: belongs to no mtps library")


if __name__ == "__main__":
    ROOT, LAYERS = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
