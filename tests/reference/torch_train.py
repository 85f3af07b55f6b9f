#!/usr/bin/python3
"""Single-process PyTorch trainer of MMOE on census data, and of ESMM or MMOE on CSV data.

The accuracy/throughput baseline for mtps's census MMOE (README "Results"): the
same features, model, batch size, epochs, optimizers and learning rates as
configs/census_mmoe.pbtxt, in plain PyTorch on one process, using the MMOE of
tests/reference/torch_models.py (the one the agreement test checks against
the C++ model). Not part of the test suite (it takes tens of seconds).

  /usr/bin/python3 tests/reference/torch_train.py --seed 1 --threads 1

Speed depends on the BLAS behind Debian's torch (built with BLAS_INFO=generic:
it calls whatever libblas.so.3 the system selects). With only libblas3 (the
reference BLAS) a 256x255x16 product takes ~1.4 ms, with OpenBLAS ~75 us; for
the measurements run with OpenBLAS (Debian libopenblas0-pthread), selected
system-wide by update-alternatives or per run with
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread
The output names the libblas the process loaded. --threads sets torch's
intra-op threads (and OMP_NUM_THREADS unless set); OPENBLAS_NUM_THREADS
defaults to 1: these products are too small to split, and on the shared 2-core
machine (load ~6) one epoch at --threads 2 ran at 3,069 examples/s with
OpenBLAS on 1 thread and 696 with OpenBLAS on 2, against ~20,000 at
--threads 1.

Features (as the config's data section says):
  - tasks: income ("50000+." positive) and never_married (marital_status
    "Never married" positive); label columns are never inputs;
  - dense: the 7 continuous columns, sign(x) log1p(|x|) (LOG1P);
  - ignored: education, instance_weight;
  - categorical: every other column (31) is one slot; each (column, value)
    gets its own embedding row (vocabulary over the train and test files, so
    a value seen only in the test file keeps its initial random row, as an
    mtps evaluation pull of an unknown key does).
Model: embedding_dim 8, 8 experts [16], towers [8]; embeddings U(-0.01, 0.01)
(server.embedding_init_scale), dense layers He/Glorot uniform, biases 0, and
with --output_bias_from_prior (the ModelConfig default) each tower's output
bias at the log-odds of its training positive rate.
Training: batch 256, 10 epochs in file order (mtps's default shuffle_buffer
0), loss = sum of the per-task mean BCEs; sparse Adagrad (lr 0.05, initial
accumulator 0.1, no epsilon, as common/optim/optimizer.h) for the
embeddings, Adam (lr 0.002, betas 0.9/0.999, eps 1e-8) for the dense
weights. Synchronous and
single-process, unlike mtps's asynchronous workers.

CSV data (--data csv, what tests/bench/train_bench.py generates and runs):
a header line, then one example per line; --labels names the two 0/1 label
columns (click, conversion), --categorical the categorical columns (each
(column, value) its own embedding row, as above), --dense the numeric ones
(used as they are: the config's dense_transform NONE). --model esmm trains
ESMM on them (losses ctr and ctcvr; CVR AUC on the clicked test rows, CTCVR
on all, as mtps's evaluation), --model mmoe one task per label.
--sparse_optimizer adam uses torch.optim.SparseAdam (lr --sparse_lr, betas
0.9/0.999, eps 1e-8; its bias correction counts the table's steps, where
mtps's counts each row's own), adagrad the Adagrad above.

Prints one JSON object: held-out AUC (exact, ties count one half) and logloss
per task, training examples, seconds and examples/s (the training loop only,
after data loading), peak resident memory, and the settings.
"""

import argparse
import csv
import gzip
import json
import math
import os
import resource
import sys
import time

import numpy as np

# torch and torch_models are imported in main(), after --threads has set the
# BLAS thread count (OpenBLAS reads it once, when it is loaded).
torch = None
torch_models = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# worker/data/census_format.h kCensusColumnNames, in file order.
CENSUS_COLUMNS = [
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode",
    "education", "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_status",
    "major_industry_code", "major_occupation_code", "race", "hispanic_origin", "sex",
    "member_of_a_labor_union", "reason_for_unemployment", "full_or_part_time_employment_stat",
    "capital_gains", "capital_losses", "dividends_from_stocks", "tax_filer_stat",
    "region_of_previous_residence", "state_of_previous_residence",
    "detailed_household_and_family_stat", "detailed_household_summary_in_household",
    "instance_weight", "migration_code_change_in_msa", "migration_code_change_in_reg",
    "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer",
    "family_members_under_18", "country_of_birth_father", "country_of_birth_mother",
    "country_of_birth_self", "citizenship", "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits", "weeks_worked_in_year",
    "year", "income"
]
LABELS = [("income", "income", "50000+."), ("never_married", "marital_status", "Never married")]
DENSE = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year"
]
IGNORED = ["education", "instance_weight"]
LABEL_COLUMNS = [column for _, column, _ in LABELS]
SLOTS = [c for c in CENSUS_COLUMNS if c not in DENSE + IGNORED + LABEL_COLUMNS]
PRIOR_CLAMP = 1e-4  # worker/nn/layers.h kPriorClamp


def read_census(path):
    """Rows of 42 stripped values; a malformed line names path:line."""
    rows = []
    with gzip.open(path, "rt") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            values = [v.strip() for v in line.split(",")]
            if len(values) != len(CENSUS_COLUMNS):
                raise ValueError("%s:%d: %d values, expected %d" %
                                 (path, number, len(values), len(CENSUS_COLUMNS)))
            rows.append(values)
    return rows


def encode(rows, vocab, path):
    """(slot indices [N, slots] int64, dense [N, 7] float32, labels [N, 2] float32)."""
    col = {name: i for i, name in enumerate(CENSUS_COLUMNS)}
    ids = np.empty((len(rows), len(SLOTS)), dtype=np.int64)
    dense = np.empty((len(rows), len(DENSE)), dtype=np.float32)
    labels = np.empty((len(rows), len(LABELS)), dtype=np.float32)
    for r, values in enumerate(rows):
        for s, name in enumerate(SLOTS):
            ids[r, s] = vocab.setdefault((name, values[col[name]]), len(vocab))
        for d, name in enumerate(DENSE):
            try:
                x = float(values[col[name]])
            except ValueError:
                raise ValueError("%s: row %d: column %s is not a number: %r" %
                                 (path, r + 1, name, values[col[name]]))
            dense[r, d] = math.copysign(math.log1p(abs(x)), x)
        for k, (_, name, positive) in enumerate(LABELS):
            labels[r, k] = 1.0 if values[col[name]] == positive else 0.0
    return torch.from_numpy(ids), torch.from_numpy(dense), torch.from_numpy(labels)


def read_csv(path, labels, categorical, dense, vocab):
    """(slot indices, dense features, labels) of a CSV file with a header."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        for name in labels + categorical + dense:
            if name not in col:
                raise ValueError("%s: no column %r in the header" % (path, name))
        label_cols = [col[c] for c in labels]
        cat_cols = [col[c] for c in categorical]
        dense_cols = [col[c] for c in dense]
        ids, values, targets = [], [], []
        for number, row in enumerate(reader, 2):
            if len(row) != len(header):
                raise ValueError("%s:%d: %d values, expected %d" %
                                 (path, number, len(row), len(header)))
            ids.append([vocab.setdefault((s, row[c]), len(vocab)) for s, c in enumerate(cat_cols)])
            try:
                values.append([float(row[c]) for c in dense_cols])
                targets.append([float(row[c]) for c in label_cols])
            except ValueError as e:
                raise ValueError("%s:%d: %s" % (path, number, e))
    return (torch.tensor(ids, dtype=torch.int64),
            torch.tensor(values, dtype=torch.float32).reshape(len(ids), len(dense)),
            torch.tensor(targets, dtype=torch.float32))


def exact_auc(scores, labels):
    """AUC with ties counting one half (average ranks)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos = labels.sum()
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def loaded_blas():
    """Path of the libblas/libopenblas this process has mapped (or None)."""
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path):
                return os.path.realpath(path)
    return None


def columns(text):
    return [c for c in text.split(",") if c]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=("census", "csv"), default="census")
    parser.add_argument("--model", choices=("mmoe", "esmm"), default="mmoe")
    parser.add_argument("--train", default=os.path.join(REPO, "tests/data/census-income/train.gz"))
    parser.add_argument("--test", default=os.path.join(REPO, "tests/data/census-income/test.gz"))
    parser.add_argument("--labels", default="click,conversion", help="csv: the label columns")
    parser.add_argument("--categorical", default="", help="csv: categorical columns")
    parser.add_argument("--dense", default="", help="csv: numeric columns")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--embedding_dim", type=int, default=8)
    parser.add_argument("--num_experts", type=int, default=8)
    parser.add_argument("--expert_hidden", default="16")
    parser.add_argument("--tower_hidden", default="8")
    parser.add_argument("--sparse_optimizer", choices=("adagrad", "adam"), default="adagrad")
    parser.add_argument("--sparse_lr", type=float, default=0.05)
    parser.add_argument("--sparse_initial_accumulator", type=float, default=0.1)
    parser.add_argument("--dense_lr", type=float, default=0.002)
    parser.add_argument("--embedding_init_scale", type=float, default=0.01)
    parser.add_argument("--output_bias_from_prior", type=int, choices=(0, 1), default=1)
    parser.add_argument("--eval_batch_size", type=int, default=1024)
    args = parser.parse_args()
    if args.data == "census" and args.model != "mmoe":
        parser.error("--data census trains --model mmoe only")

    global torch, torch_models
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch  # noqa: E402
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_models  # noqa: E402
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    vocab = {}
    if args.data == "census":
        label_names = [name for name, _, _ in LABELS]
        train_ids, train_dense, train_labels = encode(read_census(args.train), vocab, args.train)
        test_ids, test_dense, test_labels = encode(read_census(args.test), vocab, args.test)
        num_slots, num_dense = len(SLOTS), len(DENSE)
    else:
        label_names = columns(args.labels)
        if len(label_names) != 2:
            parser.error("--labels names the click and conversion columns")
        categorical, dense_columns = columns(args.categorical), columns(args.dense)
        train_ids, train_dense, train_labels = read_csv(args.train, label_names, categorical,
                                                        dense_columns, vocab)
        test_ids, test_dense, test_labels = read_csv(args.test, label_names, categorical,
                                                     dense_columns, vocab)
        num_slots, num_dense = len(categorical), len(dense_columns)

    widths = lambda s: [int(w) for w in s.split(",") if w]  # noqa: E731
    if args.model == "mmoe":
        model_config = {
            "mmoe": {
                "num_experts": args.num_experts,
                "expert_hidden": widths(args.expert_hidden),
                "tower_hidden": widths(args.tower_hidden),
            }
        }
    else:
        model_config = {
            "esmm": {
                "tower_hidden": widths(args.tower_hidden),
                "click_label": label_names[0],
                "conversion_label": label_names[1],
            }
        }
    model_config.update({"activation": "RELU", "dropout": 0})
    sparse_width = num_slots * args.embedding_dim
    model = torch_models.build_model(model_config, sparse_width, num_dense, label_names)
    dense = torch_models.init_params(model, generator)
    if args.output_bias_from_prior:
        # The C++ Model::InitOutputBiases: each output bias at the log-odds of
        # its label's training rate (ESMM's CVR tower: conversions among clicks).
        def log_odds(rate):
            rate = min(max(float(rate), PRIOR_CLAMP), 1 - PRIOR_CLAMP)
            return math.log(rate / (1 - rate))

        if args.model == "mmoe":
            rates = train_labels.double().mean(dim=0)
            for k, tower in enumerate(model.towers):
                dense[tower.linears[-1].b.offset] = log_odds(rates[k])
        else:
            click = train_labels[:, 0].double()
            dense[model.ctr.linears[-1].b.offset] = log_odds(click.mean())
            if click.sum() > 0:
                cvr = (train_labels[:, 1].double() * click).sum() / click.sum()
                dense[model.cvr.linears[-1].b.offset] = log_odds(cvr)
    dense = torch.nn.Parameter(dense)
    embedding = torch.nn.Embedding(len(vocab), args.embedding_dim, sparse=True)
    with torch.no_grad():
        embedding.weight.copy_((torch.rand(len(vocab), args.embedding_dim, generator=generator) *
                                2 - 1) * args.embedding_init_scale)
    if args.sparse_optimizer == "adagrad":
        sparse_opt = torch.optim.Adagrad([embedding.weight], lr=args.sparse_lr,
                                         initial_accumulator_value=args.sparse_initial_accumulator,
                                         eps=0.0)
    else:
        sparse_opt = torch.optim.SparseAdam([embedding.weight], lr=args.sparse_lr,
                                            betas=(0.9, 0.999), eps=1e-8)
    dense_opt = torch.optim.Adam([dense], lr=args.dense_lr, betas=(0.9, 0.999), eps=1e-8)

    def inputs(ids, dense_features):
        emb = embedding(ids).reshape(ids.shape[0], -1)
        return torch.cat([emb, dense_features], dim=1)

    n = train_ids.shape[0]
    examples = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        for lo in range(0, n, args.batch_size):
            hi = min(n, lo + args.batch_size)
            x = inputs(train_ids[lo:hi], train_dense[lo:hi])
            loss = sum(model.losses(dense, x, train_labels[lo:hi]))
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
            examples += hi - lo
    seconds = time.perf_counter() - start

    logit_batches = []
    with torch.no_grad():
        for lo in range(0, test_ids.shape[0], args.eval_batch_size):
            hi = min(test_ids.shape[0], lo + args.eval_batch_size)
            logits = model.logits(dense, inputs(test_ids[lo:hi], test_dense[lo:hi]))
            logit_batches.append([z.double() for z in logits])
    logits = [torch.cat([b[k] for b in logit_batches]) for k in range(len(logit_batches[0]))]
    y = test_labels.double()
    if args.model == "mmoe":
        columns_ = [(name, torch.sigmoid(logits[k]), y[:, k], None)
                    for k, name in enumerate(label_names)]
    else:
        ctr, cvr = torch.sigmoid(logits[0]), torch.sigmoid(logits[1])
        click, conversion = y[:, 0], y[:, 1]
        columns_ = [("ctr", ctr, click, None), ("cvr", cvr, conversion, click > 0.5),
                    ("ctcvr", ctr * cvr, click * conversion, None)]
    result = {"model": args.model, "framework": "torch %s" % torch.__version__, "eval": {}}
    for name, p, labels, where in columns_:
        if where is not None:
            p, labels = p[where], labels[where]
        p, labels = p.numpy(), labels.numpy()
        q = np.clip(p, 1e-7, 1 - 1e-7)
        result["eval"][name] = {
            "auc": round(exact_auc(p, labels), 6),
            "logloss": round(float(-np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q))),
                             6),
            "examples": int(len(labels)),
        }
    result["train"] = {
        "examples": examples,
        "seconds": round(seconds, 3),
        "examples_per_sec": round(examples / seconds, 1),
    }
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["settings"] = {
        "data": args.data,
        "seed": args.seed,
        "threads": args.threads,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "embedding_dim": args.embedding_dim,
        "sparse_optimizer": args.sparse_optimizer,
        "output_bias_from_prior": bool(args.output_bias_from_prior),
        "vocabulary": len(vocab),
        "input_dim": model.input_dim,
        "dense_params": model.num_params,
        "blas": loaded_blas(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
