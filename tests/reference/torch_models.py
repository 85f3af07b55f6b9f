"""Plain-PyTorch reference implementations of the mtps models.

Each model here is written from the documentation of its C++ counterpart
(worker/nn/layers.h, esmm.h, mmoe.h, shared_bottom.h, ple.h, single_task.h), not
from its code, with torch.nn.functional only, so that torch autograd can check
the hand-written C++ forward and backward passes (tests/reference/
agreement_test.py) and so that tests/reference/torch_train.py can train the
same models.

A model reads its weights from one flat parameter vector, in the layout the C++
headers document:
  - Linear(in, out): W (in x out, row-major), then b (out).
  - Mlp: layer by layer, the Linear block, then for a hidden layer with
    model.batch_norm its `out` scales gamma and `out` shifts beta, then for a
    hidden layer with PReLU its `out` slopes. Hidden layers get batch norm (if
    on; training mode: the batch's mean and biased variance, eps 1e-5) and then
    the activation (ReLU or PReLU); the last layer is hidden too for experts
    and bottoms (output "hidden") and a plain linear map to the logit for
    towers (output "linear").
  - MMOE: experts 0..E-1, gates 0..K-1 (Linear in x E), towers 0..K-1.
  - ESMM (every variant): CTR tower, then CVR tower.
  - Shared-Bottom: bottom, then towers 0..K-1.
  - PLE: level by level, experts E(l,0,..)..E(l,K-1,..), S(l,..), task gates,
    shared gate (below the top level when shared_experts > 0); then towers.
  - Single-task: one MLP ending in the logit.
Input rows: [embedding group 0 | group 1 | ... | dense features].

Dropout is not modelled (its masks come from the C++ model's own RNG): models
with model.dropout > 0 are rejected. Batch norm runs in training mode only
(batch statistics, as in the C++ ForwardBackward); evaluation with running
statistics is not modelled here. Given a `bn_stats` dict, every batch norm
also updates its running statistics (torch's own: momentum 0.1, unbiased
variance; starting at 0 and 1) in bn_stats[<its gamma block's name>] =
(running_mean, running_var).

Usage:
  model = build_model(model_config_dict, sparse_width, dense_width, label_names)
  losses = model.losses(params, x, labels)   # list of scalar tensors
  losses = model.losses(params, x, labels, bn_stats={})  # also running stats
The config dict is the ModelConfig as JSON with proto field names (what
mtps-model-dump writes into meta.json). A model holds only its layout
(immutable after construction), so it may be shared between threads.
"""

import math

import torch
import torch.nn.functional as F


class Block:
    """One parameter block of the flat layout, for layout checks.

    kind: "he" or "xavier" (a Linear's W, with its fan-in/fan-out), "bias",
    "prelu" (slopes, initialised to 0.25), "bn_scale" (batch-norm gamma,
    initialised to 1) or "bn_shift" (batch-norm beta, initialised to 0).
    """

    def __init__(self, name, offset, size, kind, fan_in=0, fan_out=0):
        self.name = name
        self.offset = offset
        self.size = size
        self.kind = kind
        self.fan_in = fan_in
        self.fan_out = fan_out
        # For the bias of a Linear followed by batch norm: its W block. In
        # training such a bias has gradient exactly 0 (the batch mean removes
        # it), so only float noise is left to compare, against W's gradients.
        self.zero_grad_beside = None

    def init_bound(self):
        """Half-width of the uniform init of a W block (He or Glorot)."""
        if self.kind == "he":
            return math.sqrt(6.0 / self.fan_in)
        if self.kind == "xavier":
            return math.sqrt(6.0 / (self.fan_in + self.fan_out))
        raise ValueError("block %s has no random init" % self.name)


class Layout:
    """Hands out consecutive blocks of the flat parameter vector."""

    def __init__(self):
        self.size = 0
        self.blocks = []

    def take(self, name, size, kind, fan_in=0, fan_out=0):
        block = Block(name, self.size, size, kind, fan_in, fan_out)
        self.blocks.append(block)
        self.size += size
        return block


def _view(params, block, shape):
    return params[block.offset:block.offset + block.size].view(*shape)


class Linear:
    """y = x W + b, W in x out row-major then b."""

    def __init__(self, layout, name, in_dim, out_dim, init):
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.w = layout.take(name + ".W", in_dim * out_dim, init, in_dim, out_dim)
        self.b = layout.take(name + ".b", out_dim, "bias")

    def __call__(self, params, x):
        return x @ _view(params, self.w, (self.in_dim, self.out_dim)) + _view(
            params, self.b, (self.out_dim,))


class Mlp:
    """Linear layers; every hidden layer followed by batch norm (if on), then
    ReLU or PReLU.

    output "linear": the last layer is a plain linear map (Xavier init);
    output "hidden": the last layer is hidden too (He init, activation).
    """

    def __init__(self, layout, name, in_dim, widths, output, activation, batch_norm=False):
        if not widths:
            raise ValueError("%s: an MLP needs at least one layer" % name)
        self.linears = []
        self.norms = []
        self.slopes = []
        self.activation = activation
        width_in = in_dim
        for i, width in enumerate(widths):
            hidden = i + 1 < len(widths) or output == "hidden"
            self.linears.append(
                Linear(layout, "%s.layer%d" % (name, i), width_in, width,
                       "he" if hidden else "xavier"))
            if hidden and batch_norm:
                self.linears[-1].b.zero_grad_beside = self.linears[-1].w
                self.norms.append((layout.take("%s.layer%d.bn_scale" % (name, i), width,
                                               "bn_scale"),
                                   layout.take("%s.layer%d.bn_shift" % (name, i), width,
                                               "bn_shift")))
            else:
                self.norms.append(None)
            if hidden and activation == "PRELU":
                self.slopes.append(layout.take("%s.layer%d.prelu" % (name, i), width, "prelu"))
            else:
                self.slopes.append(None)
            width_in = width
        self.hidden_last = output == "hidden"
        self.out_dim = width_in

    def __call__(self, params, x, bn_stats=None):
        for i, linear in enumerate(self.linears):
            x = linear(params, x)
            hidden = i + 1 < len(self.linears) or self.hidden_last
            if not hidden:
                continue
            if self.norms[i] is not None:
                scale, shift = self.norms[i]
                running_mean = running_var = None
                if bn_stats is not None:
                    running_mean, running_var = bn_stats.setdefault(
                        scale.name, (torch.zeros(linear.out_dim, dtype=x.dtype),
                                     torch.ones(linear.out_dim, dtype=x.dtype)))
                x = F.batch_norm(x, running_mean, running_var,
                                 weight=_view(params, scale, (linear.out_dim,)),
                                 bias=_view(params, shift, (linear.out_dim,)), training=True,
                                 momentum=0.1, eps=1e-5)
            if self.activation == "PRELU":
                slope = _view(params, self.slopes[i], (linear.out_dim,))
                x = torch.where(x > 0, x, x * slope)
            else:
                x = F.relu(x)
        return x


def bce_with_logits(logits, labels):
    """Mean binary cross-entropy over the rows, from logits."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="mean")


def masked_bce_with_logits(logits, labels, mask):
    """Mean BCE over the rows where mask is 1; 0 (zero gradient) if none."""
    per_row = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    count = mask.sum()
    if count.item() == 0:
        return (per_row * 0).sum()
    return (per_row * mask).sum() / count


def _batch_norm(config):
    return bool(config.get("batch_norm", False))


def _activation(config):
    activation = config.get("activation", "RELU")
    if activation not in ("RELU", "PRELU"):
        raise ValueError("unknown activation %r" % activation)
    if float(config.get("dropout", 0)) != 0:
        raise ValueError("dropout > 0 cannot be reproduced (masks come from the C++ RNG)")
    return activation


def _mixture(gate_logits, expert_outputs):
    """sum_e softmax(gate_logits)[:, e] * expert_outputs[e]."""
    weights = F.softmax(gate_logits, dim=1)
    stacked = torch.stack(expert_outputs, dim=1)  # B x E x h
    return (weights.unsqueeze(2) * stacked).sum(dim=1)


class Model:
    """Common part: the layout and the input split into groups and dense."""

    loss_names = ()

    def __init__(self, sparse_width, dense_width, groups=1):
        self.layout = Layout()
        self.sparse_width = sparse_width
        self.dense_width = dense_width
        self.groups = groups
        self.input_dim = groups * sparse_width + dense_width

    @property
    def num_params(self):
        return self.layout.size

    def group_input(self, x, group):
        """[embedding group `group` | dense] of an input row."""
        s = self.sparse_width
        parts = [x[:, group * s:(group + 1) * s], x[:, self.groups * s:]]
        return torch.cat(parts, dim=1)

    def losses(self, params, x, labels, bn_stats=None):
        raise NotImplementedError

    def bn_state(self, bn_stats):
        """The C++ Model::State() layout of bn_stats: for every batch norm in
        parameter-layout order, its running means, then its running variances.
        """
        parts = []
        for block in self.layout.blocks:
            if block.kind == "bn_scale":
                parts.extend(bn_stats[block.name])
        if not parts:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat(parts)


class Mmoe(Model):
    def __init__(self, config, sparse_width, dense_width, label_names):
        super().__init__(sparse_width, dense_width)
        mmoe = config["mmoe"]
        act = _activation(config)
        bn = _batch_norm(config)
        num_experts = int(mmoe.get("num_experts", 8))
        self.loss_names = list(label_names)
        self.experts = [
            Mlp(self.layout, "expert%d" % e, self.input_dim, mmoe["expert_hidden"], "hidden", act,
                bn) for e in range(num_experts)
        ]
        h = self.experts[0].out_dim
        self.gates = [
            Linear(self.layout, "gate%d" % k, self.input_dim, num_experts, "xavier")
            for k in range(len(label_names))
        ]
        self.towers = [
            Mlp(self.layout, "tower%d" % k, h, list(mmoe.get("tower_hidden", [])) + [1], "linear",
                act, bn) for k in range(len(label_names))
        ]

    def logits(self, params, x, bn_stats=None):
        outs = [expert(params, x, bn_stats) for expert in self.experts]
        return [
            tower(params, _mixture(gate(params, x), outs), bn_stats)[:, 0]
            for gate, tower in zip(self.gates, self.towers)
        ]

    def losses(self, params, x, labels, bn_stats=None):
        return [
            bce_with_logits(z, labels[:, k])
            for k, z in enumerate(self.logits(params, x, bn_stats))
        ]


class SharedBottom(Model):
    def __init__(self, config, sparse_width, dense_width, label_names):
        super().__init__(sparse_width, dense_width)
        sb = config["shared_bottom"]
        act = _activation(config)
        bn = _batch_norm(config)
        self.loss_names = list(label_names)
        self.bottom = Mlp(self.layout, "bottom", self.input_dim, sb["bottom_hidden"], "hidden", act,
                          bn)
        self.towers = [
            Mlp(self.layout, "tower%d" % k, self.bottom.out_dim,
                list(sb.get("tower_hidden", [])) + [1], "linear", act, bn)
            for k in range(len(label_names))
        ]

    def logits(self, params, x, bn_stats=None):
        shared = self.bottom(params, x, bn_stats)
        return [tower(params, shared, bn_stats)[:, 0] for tower in self.towers]

    def losses(self, params, x, labels, bn_stats=None):
        return [
            bce_with_logits(z, labels[:, k])
            for k, z in enumerate(self.logits(params, x, bn_stats))
        ]


class Ple(Model):
    def __init__(self, config, sparse_width, dense_width, label_names):
        super().__init__(sparse_width, dense_width)
        ple = config["ple"]
        act = _activation(config)
        bn = _batch_norm(config)
        self.num_levels = int(ple.get("num_levels", 2))
        self.te = int(ple.get("task_experts", 2))
        self.se = int(ple.get("shared_experts", 2))
        hidden = ple["expert_hidden"]
        num_tasks = len(label_names)
        self.loss_names = list(label_names)
        self.levels = []
        in_dim = self.input_dim
        for l in range(self.num_levels):
            level = {}
            level["task_experts"] = [[
                Mlp(self.layout, "E(%d,%d,%d)" % (l, k, j), in_dim, hidden, "hidden", act, bn)
                for j in range(self.te)
            ] for k in range(num_tasks)]
            level["shared_experts"] = [
                Mlp(self.layout, "S(%d,%d)" % (l, j), in_dim, hidden, "hidden", act, bn)
                for j in range(self.se)
            ]
            level["task_gates"] = [
                Linear(self.layout, "G(%d,%d)" % (l, k), in_dim, self.te + self.se, "xavier")
                for k in range(num_tasks)
            ]
            level["shared_gate"] = None
            if l + 1 < self.num_levels and self.se > 0:
                level["shared_gate"] = Linear(self.layout, "G(%d,s)" % l, in_dim,
                                              num_tasks * self.te + self.se, "xavier")
            self.levels.append(level)
            in_dim = (level["task_experts"][0] + level["shared_experts"])[0].out_dim
        self.towers = [
            Mlp(self.layout, "tower%d" % k, in_dim, list(ple.get("tower_hidden", [])) + [1],
                "linear", act, bn) for k in range(num_tasks)
        ]

    def logits(self, params, x, bn_stats=None):
        num_tasks = len(self.towers)
        task_in = [x] * num_tasks
        shared_in = x
        for level in self.levels:
            task_outs = [[expert(params, task_in[k], bn_stats)
                          for expert in level["task_experts"][k]] for k in range(num_tasks)]
            shared_outs = [expert(params, shared_in, bn_stats)
                           for expert in level["shared_experts"]]
            new_task_in = [
                _mixture(level["task_gates"][k](params, task_in[k]), task_outs[k] + shared_outs)
                for k in range(num_tasks)
            ]
            if level["shared_gate"] is not None:
                every = [out for outs in task_outs for out in outs] + shared_outs
                shared_in = _mixture(level["shared_gate"](params, shared_in), every)
            task_in = new_task_in
        return [
            tower(params, task_in[k], bn_stats)[:, 0] for k, tower in enumerate(self.towers)
        ]

    def losses(self, params, x, labels, bn_stats=None):
        return [
            bce_with_logits(z, labels[:, k])
            for k, z in enumerate(self.logits(params, x, bn_stats))
        ]


class SingleTask(Model):
    def __init__(self, config, sparse_width, dense_width, label_names):
        super().__init__(sparse_width, dense_width)
        st = config["single_task"]
        act = _activation(config)
        bn = _batch_norm(config)
        self.label_col = label_names.index(st["label"])
        only_where = st.get("only_where", "")
        self.mask_col = label_names.index(only_where) if only_where else None
        self.loss_names = [st["label"]]
        self.mlp = Mlp(self.layout, "mlp", self.input_dim, list(st.get("hidden", [])) + [1],
                       "linear", act, bn)

    def losses(self, params, x, labels, bn_stats=None):
        z = self.mlp(params, x, bn_stats)[:, 0]
        y = labels[:, self.label_col]
        if self.mask_col is None:
            return [bce_with_logits(z, y)]
        return [masked_bce_with_logits(z, y, labels[:, self.mask_col])]


class Esmm(Model):
    """ESMM, NO_SHARING (ESMM-NS) and NAIVE (the paper's BASE)."""

    def __init__(self, config, sparse_width, dense_width, label_names):
        esmm = config["esmm"]
        self.variant = esmm.get("variant", "ESMM")
        if self.variant not in ("ESMM", "NO_SHARING", "NAIVE"):
            raise ValueError("unknown ESMM variant %r" % self.variant)
        groups = 1 if self.variant == "ESMM" else 2
        super().__init__(sparse_width, dense_width, groups)
        act = _activation(config)
        bn = _batch_norm(config)
        self.click_col = label_names.index(esmm.get("click_label", "click"))
        self.conversion_col = label_names.index(esmm.get("conversion_label", "conversion"))
        tower_in = self.input_dim if groups == 1 else sparse_width + dense_width
        widths = list(esmm.get("tower_hidden", [])) + [1]
        self.ctr = Mlp(self.layout, "ctr", tower_in, widths, "linear", act, bn)
        self.cvr = Mlp(self.layout, "cvr", tower_in, widths, "linear", act, bn)
        self.loss_names = ["ctr", "cvr"] if self.variant == "NAIVE" else ["ctr", "ctcvr"]

    def logits(self, params, x, bn_stats=None):
        if self.groups == 1:
            return self.ctr(params, x, bn_stats)[:, 0], self.cvr(params, x, bn_stats)[:, 0]
        return (self.ctr(params, self.group_input(x, 0), bn_stats)[:, 0],
                self.cvr(params, self.group_input(x, 1), bn_stats)[:, 0])

    def losses(self, params, x, labels, bn_stats=None):
        a, c = self.logits(params, x, bn_stats)
        click = labels[:, self.click_col]
        conversion = labels[:, self.conversion_col]
        ctr = bce_with_logits(a, click)
        if self.variant == "NAIVE":
            return [ctr, masked_bce_with_logits(c, conversion, click)]
        # pCTCVR = s(a) s(c): log p and log(1 - p) from log-sigmoids.
        y = click * conversion
        log_p = F.logsigmoid(a) + F.logsigmoid(c)
        log_1mp = torch.log(-torch.expm1(log_p))
        ctcvr = -(y * log_p + (1 - y) * log_1mp).mean()
        return [ctr, ctcvr]


_KINDS = {
    "esmm": Esmm,
    "mmoe": Mmoe,
    "shared_bottom": SharedBottom,
    "ple": Ple,
    "single_task": SingleTask,
}


def model_kind(config):
    """The model kind a ModelConfig dict sets (its one `kind` oneof member)."""
    kinds = [kind for kind in _KINDS if kind in config]
    if len(kinds) != 1:
        raise ValueError("model config must set exactly one of %s, got %s" %
                         (sorted(_KINDS), kinds))
    return kinds[0]


def build_model(config, sparse_width, dense_width, label_names):
    """The reference model of a ModelConfig dict (proto field names)."""
    return _KINDS[model_kind(config)](config, sparse_width, dense_width, list(label_names))


def init_params(model, generator, dtype=torch.float32):
    """Fresh parameters with the C++ init distributions (not its values).

    W ~ U(-a, a) with He or Glorot bounds, biases 0, PReLU slopes 0.25,
    batch-norm scales 1 and shifts 0.
    """
    params = torch.zeros(model.num_params, dtype=dtype)
    for block in model.layout.blocks:
        view = params[block.offset:block.offset + block.size]
        if block.kind in ("he", "xavier"):
            bound = block.init_bound()
            view.copy_((torch.rand(block.size, generator=generator, dtype=dtype) * 2 - 1) * bound)
        elif block.kind == "prelu":
            view.fill_(0.25)
        elif block.kind == "bn_scale":
            view.fill_(1.0)
    return params
