#!/usr/bin/python3
"""Agreement test: mtps's C++ models against the PyTorch reference.

Usage: agreement_test.py PATH/TO/mtps-model-dump [unittest args]

For every model kind, and a few seeds, sizes and options, runs mtps-model-dump
(one float32 ForwardBackward of the C++ model on a random batch), then
recomputes every loss term, d loss / d params and d loss / d input with torch
autograd in float64 from the same float32 weights, inputs and labels
(tests/reference/torch_models.py, written from the headers' documentation),
and requires, for the losses and for every gradient entry,
    |C++ - torch| <= 1e-4 * max(1, |torch|)
and, per gradient block (one Linear's W, its b, PReLU slopes, batch-norm
scales or shifts, the input),
    |C++ - torch| <= 1e-4 * max |torch over the block|
so that an error in a block of small gradients cannot hide under the absolute
tolerance. The bias of a Linear followed by batch norm has gradient exactly 0
in training (the batch mean removes it); there the C++ value (float noise) must
be below 1e-4 of the largest gradient of the layer's W. With batch norm the
C++ running state after the step (means and variances, Model::State) must
match torch's own running-statistics update the same way (block "state").
Measured float32-vs-float64 errors (these cases, 2026-11-28) are
below 3.3e-6 of the block's largest entry on every case, below 2.3e-7 on the
losses, below 1e-7 on the running state, and the zero-gradient biases below
1.3e-6 of their W's largest gradient.

The dumps are deterministic (seeded), so the cases do not flake: float32 vs
float64 could only disagree about the side of a ReLU kink for a pre-activation
within ~1e-7 of 0, and for these seeds none is.

The C++ models' own index of their layout (Model::ParamBlocks, in
meta.json "blocks") must name the reference's blocks, at the same offsets
and sizes.

Self-checks: the comparison must fail for a reference reading a wrong layout
(two blocks swapped, towers or a batch norm's scale and shift), for a C++
gradient with one entry changed and for a running state with one entry
changed; the
parameters the C++ InitParams writes (no perturbation) must have the
documented distributions block by block.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

TOOL = None  # set from argv in __main__

ABS_TOL = 1e-4
BLOCK_REL_TOL = 1e-4


def run_dump(out_dir, model, labels, sparse_width, dense_width, batch, seed, perturb=0.05,
             positive_rate=0.5):
    """Runs the tool; returns (meta dict, arrays dict of numpy float32)."""
    cmd = [
        TOOL, "--model=" + model, "--labels=" + ",".join(labels),
        "--sparse_width=%d" % sparse_width, "--dense_width=%d" % dense_width,
        "--batch=%d" % batch, "--seed=%d" % seed, "--perturb=%g" % perturb,
        "--positive_rate=%g" % positive_rate, "--out_dir=" + out_dir
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise AssertionError("%s failed (exit %d): %s" % (" ".join(cmd), proc.returncode,
                                                          proc.stderr))
    with open(os.path.join(out_dir, "meta.json")) as f:
        meta = json.load(f)
    arrays = {}
    for name, spec in meta["files"].items():
        path = os.path.join(out_dir, spec["path"])
        data = np.fromfile(path, dtype="<f4")
        expected = int(np.prod(spec["shape"])) if spec["shape"] else 1
        if data.size != expected:
            raise AssertionError("%s: %d floats, shape %s says %d" %
                                 (path, data.size, spec["shape"], expected))
        arrays[name] = data.reshape(spec["shape"])
    return meta, arrays


def reference(meta, arrays, model=None):
    """Losses, gradients (torch autograd) and the batch norms' running state
    after the step (torch's own update), in float64."""
    if model is None:
        model = torch_models.build_model(meta["model"], meta["sparse_width"],
                                         meta["dense_width"], meta["label_names"])
    params = torch.tensor(arrays["params"], dtype=torch.float64, requires_grad=True)
    x = torch.tensor(arrays["input"], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor(arrays["labels"], dtype=torch.float64)
    bn_stats = {}
    losses = model.losses(params, x, labels, bn_stats)
    total = sum(losses)
    param_grad, input_grad = torch.autograd.grad(total, [params, x])
    return (model, np.array([l.item() for l in losses]), param_grad.numpy(), input_grad.numpy(),
            model.bn_state(bn_stats).numpy())


def compare(meta, arrays, model, losses, param_grad, input_grad, state):
    """Problems found (empty when the C++ dump agrees with the reference)."""
    problems = []
    if model.num_params != meta["num_params"]:
        problems.append("num_params: C++ %d, reference %d" % (meta["num_params"],
                                                              model.num_params))
        return problems
    if model.input_dim != meta["input_dim"]:
        problems.append("input_dim: C++ %d, reference %d" % (meta["input_dim"], model.input_dim))
        return problems
    if list(model.loss_names) != meta["loss_names"]:
        problems.append("loss names: C++ %s, reference %s" % (meta["loss_names"],
                                                              list(model.loss_names)))

    def check(name, got, want):
        got = got.astype(np.float64).ravel()
        want = want.ravel()
        if got.size == 0:
            return
        err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
        worst = int(np.argmax(err))
        if err[worst] > ABS_TOL:
            problems.append("%s[%d]: C++ %.8g, reference %.8g (error %.3g > %g)" %
                            (name, worst, got[worst], want[worst], err[worst], ABS_TOL))
        scale = np.max(np.abs(want))
        if scale > 0:
            err = np.abs(got - want) / scale
            worst = int(np.argmax(err))
            if err[worst] > BLOCK_REL_TOL:
                problems.append("%s[%d]: C++ %.8g, reference %.8g (error %.3g of the block's "
                                "largest |g| %.3g > %g)" % (name, worst, got[worst], want[worst],
                                                            err[worst], scale, BLOCK_REL_TOL))
        elif np.any(got != 0):
            problems.append("%s: reference gradient is 0, C++ max |g| %.3g" %
                            (name, np.max(np.abs(got))))

    for i, name in enumerate(model.loss_names):
        check("loss " + name, arrays["losses"][i:i + 1], losses[i:i + 1])
    for block in model.layout.blocks:
        s = slice(block.offset, block.offset + block.size)
        if block.zero_grad_beside is not None:
            # Exactly 0 in exact arithmetic: bound the C++ float noise by the
            # gradients of the layer's W.
            w = block.zero_grad_beside
            scale = np.max(np.abs(param_grad[w.offset:w.offset + w.size]))
            worst = np.max(np.abs(arrays["param_grad"][s]))
            if worst > BLOCK_REL_TOL * scale:
                problems.append("param_grad %s: C++ max |g| %.3g, reference 0 (> %g of %s's "
                                "largest |g| %.3g)" % (block.name, worst, BLOCK_REL_TOL, w.name,
                                                        scale))
            continue
        check("param_grad " + block.name, arrays["param_grad"][s], param_grad[s])
    check("input_grad", arrays["input_grad"], input_grad)
    if arrays["state"].shape != state.shape:
        problems.append("state: C++ %d values, reference %d" % (arrays["state"].size, state.size))
    else:
        check("state", arrays["state"], state)
    return problems


# (name, model text, labels, sparse_width, dense_width, batch, seed[, positive_rate]).
CASES = [
    ("mmoe_small", "mmoe { num_experts: 3 expert_hidden: [5, 4] tower_hidden: [3] }",
     ["a", "b"], 4, 2, 4, 3),
    ("mmoe_one_task_one_expert_no_tower_hidden", "mmoe { num_experts: 1 expert_hidden: [7] }",
     ["only"], 3, 0, 1, 5),
    ("mmoe_census_size", "mmoe { num_experts: 8 expert_hidden: [16] tower_hidden: [8] }",
     ["income", "never_married"], 248, 7, 64, 1),
    ("mmoe_three_tasks_deep", "mmoe { num_experts: 4 expert_hidden: [12, 8, 6] "
     "tower_hidden: [5, 4] }", ["t0", "t1", "t2"], 10, 3, 33, 11),
    ("mmoe_prelu", "activation: PRELU mmoe { num_experts: 3 expert_hidden: [6, 5] "
     "tower_hidden: [4] }", ["a", "b"], 6, 2, 17, 2),
    ("esmm", "esmm { tower_hidden: [8, 4] }", ["click", "conversion"], 8, 2, 32, 1),
    ("esmm_no_hidden_label_order", "esmm { click_label: 'clk' conversion_label: 'buy' }",
     ["buy", "other", "clk"], 5, 1, 9, 4),
    ("esmm_prelu", "activation: PRELU esmm { tower_hidden: [6] }", ["click", "conversion"],
     4, 3, 16, 8),
    ("esmm_no_sharing", "esmm { tower_hidden: [6, 3] variant: NO_SHARING }",
     ["click", "conversion"], 4, 2, 20, 6),
    ("esmm_naive", "esmm { tower_hidden: [6] variant: NAIVE }", ["click", "conversion"], 4, 2,
     25, 7),
    ("esmm_naive_no_click", "esmm { tower_hidden: [6] variant: NAIVE }",
     ["click", "conversion"], 4, 2, 5, 7, 0.0),
    ("shared_bottom", "shared_bottom { bottom_hidden: [9, 7] tower_hidden: [4] }",
     ["a", "b", "c"], 6, 2, 21, 3),
    ("shared_bottom_prelu", "activation: PRELU shared_bottom { bottom_hidden: [5] }", ["a"], 5,
     0, 8, 9),
    ("ple_two_levels", "ple { num_levels: 2 shared_experts: 2 task_experts: 2 "
     "expert_hidden: [6, 5] tower_hidden: [4] }", ["a", "b"], 6, 2, 19, 4),
    ("ple_three_levels_prelu", "activation: PRELU ple { num_levels: 3 shared_experts: 1 "
     "task_experts: 2 expert_hidden: [5] tower_hidden: [3] }", ["a", "b", "c"], 5, 1, 12, 5),
    ("ple_no_shared", "ple { num_levels: 2 shared_experts: 0 task_experts: 2 "
     "expert_hidden: [4] }", ["a", "b"], 4, 1, 10, 6),
    ("ple_no_task_experts", "ple { num_levels: 2 shared_experts: 3 task_experts: 0 "
     "expert_hidden: [4] }", ["a", "b"], 4, 1, 10, 7),
    ("ple_one_level", "ple { num_levels: 1 shared_experts: 2 task_experts: 1 "
     "expert_hidden: [5] tower_hidden: [2] }", ["a", "b"], 3, 2, 7, 8),
    ("single_task", "single_task { label: 'b' hidden: [7, 3] }", ["a", "b"], 5, 2, 15, 2),
    ("single_task_only_where", "single_task { label: 'cvr' hidden: [6] only_where: 'clk' }",
     ["clk", "cvr"], 5, 2, 23, 3),
    ("single_task_only_where_none", "single_task { label: 'cvr' hidden: [6] only_where: 'clk' }",
     ["clk", "cvr"], 5, 2, 6, 3, 0.0),
    # Batch norm after every hidden linear map (training mode: batch statistics).
    ("mmoe_batch_norm", "batch_norm: true mmoe { num_experts: 3 expert_hidden: [5, 4] "
     "tower_hidden: [3] }", ["a", "b"], 4, 2, 16, 3),
    ("mmoe_batch_norm_census_size_prelu", "batch_norm: true activation: PRELU mmoe { "
     "num_experts: 8 expert_hidden: [16] tower_hidden: [8] }", ["income", "never_married"], 248,
     7, 64, 1),
    ("esmm_batch_norm", "batch_norm: true esmm { tower_hidden: [8, 4] }",
     ["click", "conversion"], 8, 2, 32, 1),
    ("esmm_naive_batch_norm", "batch_norm: true esmm { tower_hidden: [6] variant: NAIVE }",
     ["click", "conversion"], 4, 2, 25, 7),
    ("shared_bottom_batch_norm", "batch_norm: true shared_bottom { bottom_hidden: [9, 7] "
     "tower_hidden: [4] }", ["a", "b", "c"], 6, 2, 21, 3),
    ("ple_batch_norm_prelu", "batch_norm: true activation: PRELU ple { num_levels: 2 "
     "shared_experts: 2 task_experts: 2 expert_hidden: [6, 5] tower_hidden: [4] }", ["a", "b"],
     6, 2, 19, 4),
    ("single_task_batch_norm_only_where", "batch_norm: true single_task { label: 'cvr' "
     "hidden: [6, 3] only_where: 'clk' }", ["clk", "cvr"], 5, 2, 23, 3),
    ("mmoe_batch_norm_batch_of_three", "batch_norm: true mmoe { num_experts: 2 "
     "expert_hidden: [4] tower_hidden: [3] }", ["a", "b"], 3, 1, 3, 9),
]


class AgreementTest(unittest.TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="mtps-reference-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def dump(self, name, *args, **kwargs):
        return run_dump(os.path.join(self.tmp, name), *args, **kwargs)

    def test_models_agree_with_torch(self):
        for case in CASES:
            name, model, labels, sparse, dense, batch, seed = case[:7]
            rate = case[7] if len(case) > 7 else 0.5
            with self.subTest(case=name):
                meta, arrays = self.dump(name, model, labels, sparse, dense, batch, seed,
                                         positive_rate=rate)
                result = reference(meta, arrays)
                problems = compare(meta, arrays, *result)
                self.assertEqual(problems, [], "%s (%s):\n  %s" % (name, model,
                                                                  "\n  ".join(problems)))

    def test_cpp_param_blocks_are_the_reference_layout(self):
        # Model::ParamBlocks (what mtps-predict's export indexes the dense
        # parameters by, and launcher/mtps_launch/torch_export.py reads) must
        # list the reference's blocks: same names, offsets and sizes, in order.
        for case in CASES:
            name, model, labels, sparse, dense = case[:5]
            with self.subTest(case=name):
                meta, _ = self.dump(name, model, labels, sparse, dense, 2, 13)
                ref = torch_models.build_model(meta["model"], sparse, dense, labels)
                want = [(b.name, b.offset, b.size) for b in ref.layout.blocks]
                got = [(b["name"], b["offset"], int(np.prod(b["shape"])))
                       for b in meta["blocks"]]
                self.assertEqual(got, want)

    def test_init_params_follow_the_documented_layout(self):
        # Without perturbation every W block must look like its U(-a, a) init
        # (within the bound and reaching most of it), every bias 0, every PReLU
        # slope 0.25: a reference layout shifted against the C++ one would put
        # weights into bias blocks or out of their bounds.
        for case in CASES:
            name, model, labels, sparse, dense = case[:5]
            with self.subTest(case=name):
                meta, arrays = self.dump(name, model, labels, sparse, dense, 2, 13, perturb=0)
                ref = torch_models.build_model(meta["model"], sparse, dense, labels)
                self.assertEqual(ref.num_params, meta["num_params"])
                params = arrays["params"].astype(np.float64)
                for block in ref.layout.blocks:
                    values = params[block.offset:block.offset + block.size]
                    if block.kind in ("bias", "bn_shift"):
                        self.assertTrue(np.all(values == 0), block.name)
                    elif block.kind == "bn_scale":
                        self.assertTrue(np.all(values == 1), block.name)
                    elif block.kind == "prelu":
                        self.assertTrue(np.all(values == np.float32(0.25)), block.name)
                    else:
                        bound = block.init_bound()
                        self.assertLessEqual(np.max(np.abs(values)), bound * (1 + 1e-6),
                                             block.name)
                        if block.size >= 20:
                            self.assertGreater(np.max(np.abs(values)), 0.5 * bound, block.name)
                            self.assertLess(abs(np.mean(values)), 0.5 * bound, block.name)

    def test_comparison_fails_for_a_wrong_layout(self):
        # The reference reads tower 0 and tower 1 swapped (same shapes):
        # losses and gradients must disagree.
        meta, arrays = self.dump("swap", CASES[0][1], CASES[0][2], *CASES[0][3:7])
        model = torch_models.build_model(meta["model"], meta["sparse_width"],
                                         meta["dense_width"], meta["label_names"])
        model.towers[0], model.towers[1] = model.towers[1], model.towers[0]
        problems = compare(meta, arrays, *reference(meta, arrays, model))
        self.assertTrue(any("loss" in p for p in problems), problems)
        self.assertTrue(any("param_grad tower" in p for p in problems), problems)

    def test_comparison_fails_for_a_wrong_batch_norm(self):
        # The reference reads gamma and beta swapped (same shapes), and the
        # C++ running state has one entry changed by 1%: both must be caught.
        case = next(c for c in CASES if c[0] == "mmoe_batch_norm")
        meta, arrays = self.dump("bn", *case[1:7])
        result = reference(meta, arrays)
        self.assertEqual(compare(meta, arrays, *result), [])
        self.assertGreater(result[4].size, 0)
        model = torch_models.build_model(meta["model"], meta["sparse_width"],
                                         meta["dense_width"], meta["label_names"])
        scale, shift = model.experts[0].norms[0]
        scale.offset, shift.offset = shift.offset, scale.offset
        problems = compare(meta, arrays, *reference(meta, arrays, model))
        self.assertTrue(any("param_grad expert0.layer0.bn_" in p for p in problems), problems)
        bad = dict(arrays)
        bad["state"] = arrays["state"].copy()
        bad["state"][-1] *= 1.01
        problems = compare(meta, bad, *result)
        self.assertTrue(any(p.startswith("state") for p in problems), problems)

    def test_comparison_fails_for_a_wrong_gradient(self):
        # One gradient entry of a gate bias (small gradients) off by 1% of its
        # block's largest entry, and one input-gradient entry off by 1%.
        meta, arrays = self.dump("grad", *CASES[2][1:7])
        result = reference(meta, arrays)
        model = result[0]
        self.assertEqual(compare(meta, arrays, *result), [])
        gate_b = next(b for b in model.layout.blocks if b.name == "gate1.b")
        g = arrays["param_grad"][gate_b.offset:gate_b.offset + gate_b.size]
        bad = dict(arrays)
        bad["param_grad"] = arrays["param_grad"].copy()
        bad["param_grad"][gate_b.offset] += 0.01 * np.max(np.abs(g))
        problems = compare(meta, bad, *result)
        self.assertTrue(any("gate1.b" in p for p in problems), problems)
        bad = dict(arrays)
        bad["input_grad"] = arrays["input_grad"].copy()
        bad["input_grad"][3, 5] *= 1.01
        problems = compare(meta, bad, *result)
        self.assertTrue(any("input_grad" in p for p in problems), problems)

    def test_reference_gradients_match_finite_differences(self):
        # The reference itself, against central differences in float64, on
        # every model kind (guards the reference against autograd misuse).
        for case in CASES:
            name, model_text, labels, sparse, dense, batch, seed = case[:7]
            if name not in ("mmoe_prelu", "esmm", "esmm_naive", "ple_three_levels_prelu",
                            "single_task_only_where", "shared_bottom", "mmoe_batch_norm",
                            "esmm_naive_batch_norm", "ple_batch_norm_prelu"):
                continue
            with self.subTest(case=name):
                meta, arrays = self.dump(name, model_text, labels, sparse, dense, batch, seed)
                model, _, param_grad, _, _ = reference(meta, arrays)
                params = torch.tensor(arrays["params"], dtype=torch.float64)
                x = torch.tensor(arrays["input"], dtype=torch.float64)
                y = torch.tensor(arrays["labels"], dtype=torch.float64)
                rng = np.random.default_rng(seed)
                for i in rng.choice(model.num_params, size=min(40, model.num_params),
                                    replace=False):
                    h = 1e-6
                    plus = params.clone()
                    plus[i] += h
                    minus = params.clone()
                    minus[i] -= h
                    fd = (sum(model.losses(plus, x, y)) - sum(model.losses(minus, x, y))) / (2 * h)
                    self.assertLess(abs(fd.item() - param_grad[i]), 1e-6 + 1e-4 * abs(fd.item()),
                                    "param %d" % i)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        sys.stderr.write("usage: agreement_test.py PATH/TO/mtps-model-dump [unittest args]\n")
        sys.exit(2)
    TOOL = sys.argv[1]
    torch.set_num_threads(1)
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])
