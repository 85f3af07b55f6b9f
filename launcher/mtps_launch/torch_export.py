"""Rebuilds an mtps model export (`mtps-launch export`) in PyTorch.

The export directory holds model.json and NumPy arrays (README.md,
"Predict and export", is the format's specification). This module needs
numpy and torch; nothing else of mtps (it imports no other module of the
mtps_launch package, and no mtps command imports it).

    import sys; sys.path.insert(0, "launcher")
    from mtps_launch import torch_export
    model = torch_export.load("runs/census-export")
    model.tasks                          # ["income", "never_married"]
    key = torch_export.feature_key("education", "Bachelors degree(BA AB BS)")
    x = model.input_rows(keys, weights, offsets, dense)    # float32 [N, input_dim]
    p = model.towers(torch.from_numpy(x))                  # float32 [N, tasks]
    p = model.score(keys, weights, offsets, dense)         # the two at once, numpy
    torch_export.export_onnx(model, "towers.onnx")         # the towers alone

Inputs come per example and slot in CSR form, as mtps-predict --dump_inputs
writes them: keys uint64 [K] (FeatureKey(column, value) of every feature),
weights float32 [K] (1 for plain ids), offsets int64 [N * S + 1] over
(example, slot) in the data's slot order (model.json input.slots), dense
float32 [N, D] (after input.dense_transform).

Why not tests/reference/torch_models.py: that file is the test oracle of
the C++ training code, functional and in training mode (batch statistics),
written from the headers to check gradients; a serving loader needs
evaluation mode (running statistics), nn.Modules that torch.onnx can trace,
and must not change when a test's oracle does, nor need tests/ at run
time. The two agree on the layout through model.json's dense_blocks, which
the C++ models write (Model::ParamBlocks) under the names the reference
uses; this loader reads every block by name and checks its shape, and the
integration test (tests/integration/predict_test.py) checks its scores
against mtps-predict's to 1e-5.

Command line: python3 torch_export.py EXPORT_DIR [--onnx FILE]
  [--inputs DUMP_DIR --out TSV]  (scores a --dump_inputs directory).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

FORMAT = "mtps-export"
VERSION = 1

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


class ExportError(Exception):
    """A malformed or unsupported export (names the file and why)."""


# --- Keys: common/base/hash.h, worker/nn/embedding_bag.h GroupKey ----------


def fnv1a64(data, h=_FNV_OFFSET):
    """FNV-1a 64 over bytes, continued from h."""
    for c in data:
        h = ((h ^ c) * _FNV_PRIME) & _MASK
    return h


def mix64(x):
    """SplitMix64's finaliser (a Python int in [0, 2^64))."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def feature_key(column, value):
    """The key of feature `value` (str or bytes, already stripped of spaces
    and tabs at both ends) in column (or field id) `column`."""
    if isinstance(column, str):
        column = column.encode("utf-8")
    if isinstance(value, str):
        value = value.encode("utf-8")
    return mix64(fnv1a64(value, fnv1a64(b"\x1f", fnv1a64(column))))


def _mix64_array(x):
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def group_keys(keys, group):
    """GroupKey of every key (uint64 array) for embedding group `group`."""
    keys = np.asarray(keys, dtype=np.uint64)
    if group == 0:
        return keys
    with np.errstate(over="ignore"):
        return _mix64_array(keys ^ np.uint64((_GOLDEN * group) & _MASK))


def initial_values(keys, dim, seed, scale):
    """The rows the servers give keys without a row (ps/table/sparse_table.h
    InitialValue): float32 [len(keys), dim]."""
    keys = np.asarray(keys, dtype=np.uint64)
    with np.errstate(over="ignore"):
        stream = _mix64_array(keys ^ np.uint64(mix64(seed & _MASK)))
        j = np.arange(dim, dtype=np.uint64) * np.uint64(_GOLDEN)
        bits = _mix64_array(stream[:, None] + j[None, :])
    unit = (bits >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return (np.float32(2.0) * unit - np.float32(1.0)) * np.float32(scale)


# --- The dense towers -------------------------------------------------------


class _Blocks:
    """The dense parameters by block name (model.json dense_blocks)."""

    def __init__(self, dense, blocks, path):
        self.path = path
        self.by_name = {}
        at = 0
        for block in blocks:
            size = int(np.prod(block["shape"])) if block["shape"] else 1
            if block["offset"] != at:
                raise ExportError("%s: dense block %s at offset %d, expected %d" %
                                  (path, block["name"], block["offset"], at))
            self.by_name[block["name"]] = (block["offset"], tuple(block["shape"]))
            at += size
        if at != dense.size:
            raise ExportError("%s: dense blocks cover %d parameters, dense.npy holds %d" %
                              (path, at, dense.size))
        self.dense = dense
        self.used = set()

    def has(self, name):
        return name in self.by_name

    def get(self, name, shape):
        if name not in self.by_name:
            raise ExportError("%s: no dense block %r (the model's layout differs from this "
                              "loader's)" % (self.path, name))
        offset, have = self.by_name[name]
        if have != tuple(shape):
            raise ExportError("%s: dense block %s has shape %s, the model needs %s" %
                              (self.path, name, list(have), list(shape)))
        self.used.add(name)
        size = int(np.prod(shape))
        return torch.from_numpy(self.dense[offset:offset + size].reshape(shape).copy())


def _linear(blocks, name):
    """The Linear of blocks name.W (in x out) and name.b (out)."""
    if not blocks.has(name + ".W"):
        blocks.get(name + ".W", ())  # raises, naming the block
    shape = blocks.by_name[name + ".W"][1]
    if len(shape) != 2:
        raise ExportError("%s: dense block %s.W has shape %s, not [in, out]" %
                          (blocks.path, name, list(shape)))
    in_dim, out_dim = shape
    layer = torch.nn.Linear(in_dim, out_dim)
    with torch.no_grad():
        layer.weight.copy_(blocks.get(name + ".W", shape).t())  # y = x W + b; torch keeps W^T
        layer.bias.copy_(blocks.get(name + ".b", (out_dim,)))
    return layer


class _Prelu(torch.nn.Module):
    def __init__(self, slopes):
        super().__init__()
        self.slopes = torch.nn.Parameter(slopes)

    def forward(self, x):
        return torch.where(x > 0, x, x * self.slopes)


class Mlp(torch.nn.Module):
    """worker/nn/layers.h Mlp in evaluation mode: Linear layers, each hidden
    one followed by batch norm (running statistics) when the export has one,
    then ReLU or PReLU. hidden_last: the last layer is hidden too (experts,
    bottoms); else it is the linear logit layer (towers)."""

    def __init__(self, blocks, norms, name, hidden_last, activation):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        count = 0
        while blocks.has("%s.layer%d.W" % (name, count)):
            count += 1
        if count == 0:
            raise ExportError("%s: no layers of %s" % (blocks.path, name))
        for i in range(count):
            prefix = "%s.layer%d" % (name, i)
            parts = [_linear(blocks, prefix)]
            width = parts[0].out_features
            if i + 1 < count or hidden_last:
                if blocks.has(prefix + ".bn_scale"):
                    norm = torch.nn.BatchNorm1d(width, eps=norms.epsilon)
                    mean, var = norms.get(prefix, width)
                    with torch.no_grad():
                        norm.weight.copy_(blocks.get(prefix + ".bn_scale", (width,)))
                        norm.bias.copy_(blocks.get(prefix + ".bn_shift", (width,)))
                        norm.running_mean.copy_(mean)
                        norm.running_var.copy_(var)
                    parts.append(norm)
                if activation == "PRELU":
                    parts.append(_Prelu(blocks.get(prefix + ".prelu", (width,))))
                else:
                    parts.append(torch.nn.ReLU())
            self.layers.append(torch.nn.Sequential(*parts))
        self.out_dim = self.layers[-1][0].out_features

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class _Norms:
    """The batch norms' running statistics (model.json batch_norms)."""

    def __init__(self, state, norms, epsilon, path):
        self.state = state
        self.by_layer = {n["layer"]: n for n in norms}
        self.epsilon = float(epsilon)
        self.path = path

    def get(self, layer, width):
        n = self.by_layer.get(layer)
        if n is None or n["width"] != width:
            raise ExportError("%s: no running statistics of batch norm %s (width %d)" %
                              (self.path, layer, width))
        mean = self.state[n["mean_offset"]:n["mean_offset"] + width]
        var = self.state[n["var_offset"]:n["var_offset"] + width]
        return torch.from_numpy(mean.copy()), torch.from_numpy(var.copy())


def _mixture(gate_logits, outs):
    weights = F.softmax(gate_logits, dim=1)
    return (weights.unsqueeze(2) * torch.stack(outs, dim=1)).sum(dim=1)


class Towers(torch.nn.Module):
    """The dense part of an mtps model, evaluation mode: input rows
    [B, input_dim] (README "Predict and export": [group 0 | group 1 | ... |
    dense]) to the probabilities of the tasks [B, len(tasks)]."""

    def __init__(self, meta, blocks, norms):
        super().__init__()
        model = meta["model"]
        config = model["config"]
        self.kind = model["kind"]
        self.tasks = list(model["tasks"])
        inputs = meta["input"]
        self.sparse_width = inputs["sparse_width"]
        self.groups = inputs["embedding_groups"]
        act = config.get("activation", "RELU")
        if act not in ("RELU", "PRELU"):
            raise ExportError("%s: unknown activation %r" % (blocks.path, act))
        tasks = len(self.tasks)

        def mlp(name, hidden_last):
            return Mlp(blocks, norms, name, hidden_last, act)

        if self.kind == "mmoe":
            experts = int(config["mmoe"]["num_experts"])
            self.experts = torch.nn.ModuleList(mlp("expert%d" % e, True) for e in range(experts))
            self.gates = torch.nn.ModuleList(_linear(blocks, "gate%d" % k) for k in range(tasks))
            self.heads = torch.nn.ModuleList(mlp("tower%d" % k, False) for k in range(tasks))
        elif self.kind == "shared_bottom":
            self.bottom = mlp("bottom", True)
            self.heads = torch.nn.ModuleList(mlp("tower%d" % k, False) for k in range(tasks))
        elif self.kind == "ple":
            ple = config["ple"]
            self.num_levels = int(ple["num_levels"])
            self.te = int(ple["task_experts"])
            self.se = int(ple["shared_experts"])
            self.task_experts = torch.nn.ModuleList()
            self.shared_experts = torch.nn.ModuleList()
            self.task_gates = torch.nn.ModuleList()
            self.shared_gates = torch.nn.ModuleList()
            for level in range(self.num_levels):
                self.task_experts.append(torch.nn.ModuleList(
                    torch.nn.ModuleList(mlp("E(%d,%d,%d)" % (level, k, j), True)
                                        for j in range(self.te)) for k in range(tasks)))
                self.shared_experts.append(torch.nn.ModuleList(
                    mlp("S(%d,%d)" % (level, j), True) for j in range(self.se)))
                self.task_gates.append(torch.nn.ModuleList(
                    _linear(blocks, "G(%d,%d)" % (level, k)) for k in range(tasks)))
                shared = level + 1 < self.num_levels and self.se > 0
                self.shared_gates.append(torch.nn.ModuleList(
                    [_linear(blocks, "G(%d,s)" % level)] if shared else []))
            self.heads = torch.nn.ModuleList(mlp("tower%d" % k, False) for k in range(tasks))
        elif self.kind == "single_task":
            self.heads = torch.nn.ModuleList([mlp("mlp", False)])
        elif self.kind == "esmm":
            self.heads = torch.nn.ModuleList([mlp("ctr", False), mlp("cvr", False)])
        else:
            raise ExportError("%s: unknown model kind %r" % (blocks.path, self.kind))
        unused = set(blocks.by_name) - blocks.used
        if unused:
            raise ExportError("%s: dense blocks this loader does not use: %s" %
                              (blocks.path, ", ".join(sorted(unused))))
        self.eval()

    def _group_input(self, x, group):
        s = self.sparse_width
        return torch.cat([x[:, group * s:(group + 1) * s], x[:, self.groups * s:]], dim=1)

    def forward(self, x):
        if self.kind == "mmoe":
            outs = [expert(x) for expert in self.experts]
            logits = [head(_mixture(gate(x), outs))[:, 0]
                      for gate, head in zip(self.gates, self.heads)]
        elif self.kind == "shared_bottom":
            shared = self.bottom(x)
            logits = [head(shared)[:, 0] for head in self.heads]
        elif self.kind == "ple":
            tasks = len(self.heads)
            task_in = [x] * tasks
            shared_in = x
            for level in range(self.num_levels):
                task_outs = [[e(task_in[k]) for e in self.task_experts[level][k]]
                             for k in range(tasks)]
                shared_outs = [e(shared_in) for e in self.shared_experts[level]]
                new_task_in = [_mixture(self.task_gates[level][k](task_in[k]),
                                        task_outs[k] + shared_outs) for k in range(tasks)]
                for gate in self.shared_gates[level]:
                    every = [o for outs in task_outs for o in outs] + shared_outs
                    shared_in = _mixture(gate(shared_in), every)
                task_in = new_task_in
            logits = [head(task_in[k])[:, 0] for k, head in enumerate(self.heads)]
        elif self.kind == "single_task":
            logits = [self.heads[0](x)[:, 0]]
        else:  # esmm: ctr, cvr, ctcvr = ctr * cvr
            if self.groups == 1:
                a, c = self.heads[0](x)[:, 0], self.heads[1](x)[:, 0]
            else:
                a = self.heads[0](self._group_input(x, 0))[:, 0]
                c = self.heads[1](self._group_input(x, 1))[:, 0]
            p_ctr, p_cvr = torch.sigmoid(a), torch.sigmoid(c)
            return torch.stack([p_ctr, p_cvr, p_ctr * p_cvr], dim=1)
        return torch.sigmoid(torch.stack(logits, dim=1))


# --- The whole model --------------------------------------------------------


class ExportedModel:
    """An export loaded: the embeddings, the towers, the input layout."""

    def __init__(self, path, meta, keys, values, towers):
        self.path = path
        self.meta = meta
        self.keys = keys
        self.values = values
        self.towers = towers
        inputs = meta["input"]
        self.tasks = list(meta["model"]["tasks"])
        self.dim = inputs["embedding_dim"]
        self.groups = inputs["embedding_groups"]
        self.slots = inputs["slots"]
        self.dense_width = inputs["dense_width"]
        self.input_dim = inputs["input_dim"]
        self.seed = meta["hashing"]["seed"]
        self.init_scale = meta["hashing"]["init_scale"]

    def rows(self, keys):
        """Embedding rows of keys (uint64) [len(keys), dim]: the exported row
        of each key, or the servers' initial value of a key without one."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.empty((keys.size, self.dim), dtype=np.float32)
        if self.keys.size:
            at = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
            found = self.keys[at] == keys
        else:
            at = np.zeros(keys.size, dtype=np.int64)
            found = np.zeros(keys.size, dtype=bool)
        out[found] = self.values[at[found]]
        missing = ~found
        if missing.any():
            out[missing] = initial_values(keys[missing], self.dim, self.seed, self.init_scale)
        return out

    def input_rows(self, keys, weights, offsets, dense):
        """The towers' input rows float32 [N, input_dim] of N examples given
        per (example, slot) in CSR form (see the module comment)."""
        keys = np.asarray(keys, dtype=np.uint64)
        weights = np.asarray(weights, dtype=np.float32)
        offsets = np.asarray(offsets, dtype=np.int64)
        dense = np.asarray(dense, dtype=np.float32).reshape(-1, self.dense_width)
        slots = len(self.slots)
        n = dense.shape[0]
        if offsets.size != n * slots + 1 or offsets[-1] != keys.size:
            raise ValueError("offsets: %d entries for %d examples of %d slots (and %d keys)" %
                             (offsets.size, n, slots, keys.size))
        cell = np.repeat(np.arange(n * slots), np.diff(offsets))
        mean = np.array([s["pooling"] == "mean" for s in self.slots] * n, dtype=bool)
        weight_sum = np.zeros(n * slots, dtype=np.float32)
        np.add.at(weight_sum, cell, weights)
        parts = []
        for g in range(self.groups):
            pooled = np.zeros((n * slots, self.dim), dtype=np.float32)
            np.add.at(pooled, cell, self.rows(group_keys(keys, g)) * weights[:, None])
            divide = mean & (weight_sum != 0)
            pooled[divide] /= weight_sum[divide, None]
            pooled[mean & (weight_sum == 0)] = 0
            parts.append(pooled.reshape(n, slots * self.dim))
        parts.append(dense)
        return np.concatenate(parts, axis=1)

    def score(self, keys, weights, offsets, dense):
        """Probabilities float32 [N, len(tasks)] (columns in self.tasks order)."""
        x = torch.from_numpy(self.input_rows(keys, weights, offsets, dense))
        with torch.no_grad():
            return self.towers(x).numpy()


def _load_npy(directory, name, dtype, path):
    file = os.path.join(directory, name)
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ExportError("%s: cannot read: %s" % (file, e))
    if array.dtype != np.dtype(dtype):
        raise ExportError("%s: dtype %s, the format says %s" % (file, array.dtype, dtype))
    return array


def load(directory):
    """Loads an export directory (ExportError naming the file and why when it
    is not a complete export of this format)."""
    path = os.path.join(directory, "model.json")
    try:
        with open(path) as f:
            meta = json.load(f)
    except OSError as e:
        raise ExportError("%s: cannot read (an export directory has a model.json, written "
                          "last): %s" % (path, e.strerror or e))
    except ValueError as e:
        raise ExportError("%s: not JSON: %s" % (path, e))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ExportError("%s: format %r version %r; this loader reads %s version %d" %
                          (path, meta.get("format"), meta.get("version"), FORMAT, VERSION))
    files = meta["files"]
    keys = _load_npy(directory, files["embedding_keys"], "<u8", path)
    values = _load_npy(directory, files["embedding_values"], "<f4", path)
    dense = _load_npy(directory, files["dense"], "<f4", path)
    state = _load_npy(directory, files["model_state"], "<f4", path)
    dim = meta["input"]["embedding_dim"]
    if values.shape != (keys.size, dim):
        raise ExportError("%s: embeddings.values has shape %s for %d keys of dim %d" %
                          (path, list(values.shape), keys.size, dim))
    if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
        raise ExportError("%s: embedding keys are not strictly ascending" % path)
    if dense.size != meta["model"]["num_params"]:
        raise ExportError("%s: dense.npy holds %d parameters, the model has %d" %
                          (path, dense.size, meta["model"]["num_params"]))
    blocks = _Blocks(dense, meta["dense_blocks"], path)
    norms = _Norms(state, meta["batch_norms"], meta["batch_norm_epsilon"], path)
    towers = Towers(meta, blocks, norms)
    return ExportedModel(directory, meta, keys, values, towers)


def export_onnx(model, path):
    """Writes the towers (input rows [B, input_dim] to probabilities [B,
    tasks], B dynamic) as an ONNX file with torch.onnx (which needs no onnx
    package)."""
    dummy = torch.zeros(2, model.input_dim, dtype=torch.float32)
    torch.onnx.export(model.towers, dummy, path, input_names=["input"],
                      output_names=["probabilities"],
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
                      opset_version=13)


def main(argv):
    parser = argparse.ArgumentParser(description="Load an mtps export in PyTorch.")
    parser.add_argument("export_dir")
    parser.add_argument("--onnx", metavar="FILE", help="write the towers as ONNX")
    parser.add_argument("--inputs", metavar="DIR",
                        help="score the inputs mtps-predict --dump_inputs wrote into DIR")
    parser.add_argument("--out", metavar="TSV", help="with --inputs: where the scores go")
    args = parser.parse_args(argv)
    try:
        model = load(args.export_dir)
    except ExportError as e:
        print("torch_export: error: %s" % e, file=sys.stderr)
        return 1
    print("%s: %s, tasks %s, %d embedding rows of dim %d, input_dim %d" %
          (args.export_dir, model.meta["model"]["kind"], ", ".join(model.tasks),
           model.keys.size, model.dim, model.input_dim))
    if args.onnx:
        export_onnx(model, args.onnx)
        print("wrote %s" % args.onnx)
    if args.inputs:
        arrays = [np.load(os.path.join(args.inputs, name + ".npy"))
                  for name in ("keys", "weights", "offsets", "dense")]
        scores = model.score(*arrays)
        out = open(args.out, "w") if args.out else sys.stdout
        out.write("\t".join(model.tasks) + "\n")
        for row in scores:
            out.write("\t".join("%.9g" % v for v in row) + "\n")
        if args.out:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
