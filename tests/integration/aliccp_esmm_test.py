"""Integration: ESMM on the Ali-CCP sample through the launcher, 1 server and
2 workers; checks the ctr/cvr/ctcvr evaluation against counts taken from the
test CSV itself."""

import csv
import math

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "aliccp_esmm.pbtxt"


def count_test_rows():
    """(all rows, clicked rows) of the config's test file."""
    path = harness.config_data_path(CONFIG, "test_path")
    delimiter = harness.config_string(CONFIG, "delimiter") or ","
    click_label = harness.config_string(CONFIG, "click_label") or "click"
    click_column = harness.config_labels(CONFIG).get(click_label, "click")
    with harness.open_text(path) as f:
        rows = [row for row in csv.DictReader(f, delimiter=delimiter) if row]
    # A label without positive_values is positive when its value is > 0.5.
    clicked = sum(1 for row in rows if float(row[click_column]) > 0.5)
    return len(rows), clicked


class AliccpEsmmTest(RunDirTestCase):
    def test_evaluates_cvr_on_clicked_rows(self):
        rows, clicked = count_test_rows()
        self.assertGreater(clicked, 0, "the test file has no clicks; the test proves nothing")
        run_dir = self.tmp / "run"
        result = self.run_launcher(CONFIG, servers=1, workers=2, run_dir=run_dir)
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 0, info)

        summary = read_json(run_dir / "summary.json")
        self.assertEqual(summary["model"], "esmm")
        self.assertEqual(set(summary["eval"]), {"ctr", "cvr", "ctcvr"}, info)
        for task, metrics in summary["eval"].items():
            self.assertTrue(math.isfinite(metrics["auc"]), "%s: %s" % (task, metrics))
            self.assertTrue(0.0 <= metrics["auc"] <= 1.0, "%s: %s" % (task, metrics))
            self.assertTrue(math.isfinite(metrics["logloss"]), "%s: %s" % (task, metrics))
        # CTR and CTCVR are evaluated on every impression, CVR on clicks only.
        self.assertEqual(summary["eval"]["ctr"]["examples"], rows)
        self.assertEqual(summary["eval"]["ctcvr"]["examples"], rows)
        self.assertEqual(summary["eval"]["cvr"]["examples"], clicked)

        cluster = read_json(run_dir / "cluster.json")
        self.assertEqual(len(cluster["nodes"]), 4, cluster)
        launch = read_json(run_dir / "launch.json")
        for node in launch["nodes"]:
            self.assertEqual(node["exit_code"], 0, node)
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
