"""Validates the batch-size advisor: its B_crit and learning rate against tuned, held-out runs.

For four workloads

- `mlp`: the study's 3 x 128 BN MLP (`tfgap.models` "mlp") on MNIST-1D;
- `cnn`: a small 1-D BN CNN on MNIST-1D;
- `dropout`: a 2 x 256 MLP with dropout 0.3 and no batch normalization;
- `mlp_noisy`: the BN MLP on a second data set, MNIST-1D generated at
  another size and noise level (12,500 signals, twice the correlated and
  i.i.d. noise: 9,000 training, 1,000 validation);

this script measures, at batch sizes 16 to 1024 (SGD, momentum 0.9, a
constant learning rate):

1. **the tuned rate**: on seed 0, a sqrt(2)-spaced grid around the
   sqrt-scaled centre, widened until the fastest rate lies strictly inside
   it, for each of two targets: a validation accuracy and a training loss
   (the mean loss over all training signals, in inference mode). Steps to a
   target: the first crossing of the curve smoothed over three consecutive
   evaluations (spaced 4% apart in steps), interpolated in log(step);
2. **the measured steps** `S(B)` at the tuned rate and its two neighbours on
   seeds 1-3, which were not used for tuning;
3. **the measured critical batch**: `(S / S_min - 1)(E / E_min - 1) = 1`
   fitted to the mean steps at the tuned rate (`tfgap.advisor.fit_tradeoff`),
   `B_crit = E_min / S_min`, and a bootstrap interval: each replicate
   resamples the held-out seeds and, per batch size, takes the tuned rate or
   one of its neighbours at random (the tuned rate is itself uncertain by a
   grid step);
4. **the advisor's prediction**, as a user gets it: `tfgap.advisor.advise_model`
   on the workload's model compiled with the rate tuned at `B = 32` (its
   default measurement run: two epochs), predicted `B_crit` (= `B_noise`),
   `B_simple` beside it, and the learning rate `eps_opt(B)` at every batch
   size against the tuned one. For comparison, `B_noise` and `B_simple`
   measured at the end of a held-out run at `B = 32` (at the target).

Targets of the advisor (issue 23): predicted `B_crit` within 1.25x of the
measured one on at least 3 of the 4 workloads; `eps_opt` within one sqrt(2)
step of the tuned rate at >= 75% of the batch sizes.

Usage:

    python benchmarks/advisor_validation.py --workloads=mlp,dropout &   # two processes,
    python benchmarks/advisor_validation.py --workloads=cnn,mlp_noisy   # ~1 h each on 2 cores
    python benchmarks/advisor_validation.py --analyse                   # tables + figure

Each workload writes `<output_dir>/<workload>.json`: every run's evaluation
curve (step, validation accuracy, training loss), its steps to each target,
and the advisor's output. `--analyse` reads them and writes
`<output_dir>/summary.json`, the figure `docs/images/advisor_validation.png`
and the Markdown tables.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

BATCHES = (16, 32, 64, 128, 256, 512, 1024)
SMALL_BATCH = 32
TUNING_SEED, HELD_OUT_SEEDS = 0, (1, 2, 3)
VALIDATION_EXAMPLES = 1000
STEP = math.sqrt(2.0)
TARGETS = ("val_accuracy", "train_loss")
WORKLOADS = {
    # lr: centre of the grid at REF_BATCH, sqrt-scaled to each batch size.
    "mlp": dict(data="mnist1d", model="mlp", val_accuracy=0.56, train_loss=1.0, lr=0.02,
                label="MLP 3x128 + BN, MNIST-1D"),
    "cnn": dict(data="mnist1d", model="cnn", val_accuracy=0.80, train_loss=0.5, lr=0.02,
                label="1-D CNN 3x32 + BN, MNIST-1D"),
    "dropout": dict(data="mnist1d", model="dropout", val_accuracy=0.48, train_loss=1.2,
                    lr=0.02, label="MLP 2x256 + dropout 0.3, no BN, MNIST-1D"),
    "mlp_noisy": dict(data="mnist1d_noisy", model="mlp", val_accuracy=0.35, train_loss=1.5,
                      lr=0.02, label="MLP 3x128 + BN, MNIST-1D 12.5k, 2x noise"),
}
REF_BATCH = 50
MAX_WIDEN = 4
OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                          "advisor_validation")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--max_steps", type=int, default=5000)
    parser.add_argument("--output_dir", default=OUTPUT_DIR)
    parser.add_argument("--figure", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images",
        "advisor_validation.png"))
    parser.add_argument("--analyse", action="store_true",
                        help="only analyse the workloads' JSON files")
    parser.add_argument("--bootstrap", type=int, default=2000)
    return parser.parse_args(argv)


# -- data and models ---------------------------------------------------------

def load_data(name):
    """`(train, validation)` arrays of a workload's data set."""
    if name == "mnist1d":
        from tfgap import data

        def arrays(split):
            ds = data.build_dataset("mnist1d", split, batch_size=4096, training=False,
                                    shuffle=False, validation_examples=VALIDATION_EXAMPLES)
            xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
            return np.concatenate(xs), np.concatenate(ys)

        return arrays("train"), arrays("validation")
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = 12500, 7
    args.corr_noise_scale, args.iid_noise_scale = 0.5, 0.04
    state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    x, y = d["x"].astype("float32"), d["y"].astype("int32")
    n = len(x) - VALIDATION_EXAMPLES
    return (x[:n], y[:n]), (x[n:], y[n:])


def build(name, seed):
    import keras

    from tfgap import models

    if name == "mlp":
        return models.build_model("mlp", num_classes=10, input_shape=(40,), mlp_width=128,
                                  mlp_depth=3, seed=seed)
    inputs = keras.Input((40,))
    init = lambda i: keras.initializers.HeNormal(seed * 100 + i)  # noqa: E731
    if name == "dropout":
        x = inputs
        for i in range(2):
            x = keras.layers.Dense(256, activation="relu", kernel_initializer=init(i))(x)
            x = keras.layers.Dropout(0.3, seed=seed * 100 + 50 + i)(x)
    else:
        x = keras.layers.Reshape((40, 1))(inputs)
        for i, strides in enumerate((1, 2, 2)):
            x = keras.layers.Conv1D(32, 5, strides=strides, padding="same", use_bias=False,
                                    kernel_initializer=init(i))(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(
        seed * 100 + 9))(x)
    return keras.Model(inputs, outputs, name=name)


# -- runs --------------------------------------------------------------------

def evaluation_steps(max_steps):
    """Steps at which a run is evaluated: every step to 20, then 4% apart."""
    steps, s = [], 1
    while s <= max_steps:
        steps.append(s)
        s = s + 1 if s < 20 else max(s + 1, math.ceil(s * 1.04))
    return steps


def steps_to_target(steps, values, target, below):
    """The first crossing of `target` by `values` smoothed over 3 evaluations, in log(step).

    `below`: the target is reached when the smoothed value falls to it (a
    loss), else when it rises to it (an accuracy). `math.inf` if never.
    The smoothed value at evaluation i is the mean of evaluations i-1, i, i+1
    (two at the ends); the crossing is interpolated linearly in log(step)
    between the evaluation before it and the one that reaches it.

    >>> steps_to_target([1, 2, 4, 8], [0.1, 0.2, 0.6, 0.8], 0.4, below=False)
    2.69
    """
    v = np.asarray(values, float)
    if below:
        v, target = -v, -target
    if len(v) < 2:
        return math.inf
    smooth = np.array([v[max(0, i - 1):i + 2].mean() for i in range(len(v))])
    hits = np.nonzero(smooth >= target)[0]
    if not len(hits):
        return math.inf
    i = int(hits[0])
    if i == 0:
        return float(steps[0])
    a, b = smooth[i - 1], smooth[i]
    f = (target - a) / (b - a) if b != a else 1.0
    return round(float(math.exp(math.log(steps[i - 1]) + f * (math.log(steps[i])
                                                                - math.log(steps[i - 1])))), 2)


class Trainer:
    """One model and optimizer per workload, reset per run (one trace for all runs)."""

    def __init__(self, name, workload, train, validation):
        import keras
        import tensorflow as tf

        self.name, self.workload = name, workload
        self.x, self.y = train
        self.model = build(workload["model"], TUNING_SEED)
        self.optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        self.optimizer.build(self.model.trainable_variables)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._init = {}
        xt, yt = tf.constant(self.x), tf.constant(self.y)
        xv, yv = tf.constant(validation[0]), tf.constant(validation[1])
        model, optimizer, loss = self.model, self.optimizer, self.loss

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
        def step(index):
            x, y = tf.gather(xt, index), tf.gather(yt, index)
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return value

        @tf.function
        def evaluate():
            pred = tf.argmax(model(xv, training=False), -1, output_type=tf.int32)
            accuracy = tf.reduce_mean(tf.cast(tf.equal(pred, yv), tf.float32))
            return accuracy, loss(yt, model(xt, training=False))

        self._step, self._evaluate = step, evaluate

    def reset(self, lr, seed):
        if seed not in self._init:
            self._init[seed] = [np.array(v.numpy()) for v in
                                build(self.workload["model"], seed).variables]
        for v, value in zip(self.model.variables, self._init[seed]):
            v.assign(value)
        for v in self.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        self.optimizer.learning_rate = lr

    def run(self, batch, lr, seed, cap):
        """One run until both targets are crossed (or `cap` steps): its record."""
        self.reset(lr, seed)
        rng = np.random.default_rng(seed)
        n = len(self.x)
        per_epoch = n // batch
        evals, reached = [], {}
        due = iter(evaluation_steps(cap))
        next_eval, step, after = next(due), 0, 0
        while step < cap:
            if step % per_epoch == 0:
                order = rng.permutation(n).astype("int32")
            i = step % per_epoch
            loss = float(self._step(order[i * batch:(i + 1) * batch]))
            step += 1
            if not math.isfinite(loss):
                break
            if step == next_eval:
                acc, train_loss = (float(t) for t in self._evaluate())
                evals.append([step, round(acc, 4), round(train_loss, 5)])
                next_eval = next(due, cap + 1)
                reached = self.steps(evals)
                if all(math.isfinite(v) for v in reached.values()):
                    after += 1
                    if after > 1:  # one more evaluation: the smoothing's right neighbour
                        break
        reached = self.steps(evals) if evals else {t: math.inf for t in TARGETS}
        return {"batch_size": batch, "lr": lr, "seed": seed, "cap": cap,
                "steps": {t: (v if math.isfinite(v) else None) for t, v in reached.items()},
                "evals": evals}

    def steps(self, evals):
        s = [e[0] for e in evals]
        return {"val_accuracy": steps_to_target(s, [e[1] for e in evals],
                                                self.workload["val_accuracy"], below=False),
                "train_loss": steps_to_target(s, [e[2] for e in evals],
                                              self.workload["train_loss"], below=True)}


def _steps(record, target):
    v = record["steps"][target]
    return math.inf if v is None else v


def measure_batch(trainer, batch, args, log):
    """The rate grid on the tuning seed (widened until each target's best is inside), then
    the held-out seeds at each target's best rate and its neighbours."""
    centre = trainer.workload["lr"] * math.sqrt(batch / REF_BATCH)
    runs = {}

    def rate(k):
        return centre * STEP ** k

    def best(target, seed=TUNING_SEED):
        tried = {k: _steps(runs[k, seed], target) for k, s in runs if s == seed}
        return min(tried, key=lambda k: (tried[k], k)), tried

    def trial(k, seed):
        if (k, seed) in runs:
            return
        finite = [_steps(r, t) for (kk, s), r in runs.items() if s == seed for t in TARGETS]
        finite = [v for v in finite if v < math.inf]
        cap = (args.max_steps if seed != TUNING_SEED or not finite
               else min(args.max_steps, math.ceil(2.0 * max(finite))))
        runs[k, seed] = trainer.run(batch, rate(k), seed, cap)
        log(f"  {trainer.name} B={batch:5d} lr={rate(k):.4g} seed {seed}: "
            + ", ".join(f"{t} {runs[k, seed]['steps'][t]}" for t in TARGETS))

    for k in (-1, 0, 1):
        trial(k, TUNING_SEED)
    for _ in range(2 * MAX_WIDEN):  # widen while a target's best rate sits on an edge
        edges = []
        for target in TARGETS:
            k, tried = best(target)
            if tried[k] == math.inf:
                edges.append(max(tried) + 1)
            elif k == min(tried):
                edges.append(k - 1)
            elif k == max(tried):
                edges.append(k + 1)
        if not edges:
            break
        for k in edges:
            trial(k, TUNING_SEED)
    tuned = {t: best(t)[0] for t in TARGETS}
    for target, k in tuned.items():
        for kk in (k - 1, k, k + 1):
            for seed in HELD_OUT_SEEDS:
                trial(kk, seed)
    return {"batch_size": batch, "centre": centre,
            "tuned": {t: {"k": k, "lr": rate(k),
                          "interior": min(kk for kk, s in runs if s == TUNING_SEED) < k
                          < max(kk for kk, s in runs if s == TUNING_SEED)}
                      for t, k in tuned.items()},
            "runs": [dict(r, k=k) for (k, _), r in sorted(runs.items())]}


def advisor(trainer, lr, small_steps, log):
    """`advise_model` at the small batch, as a user calls it, and B_noise at the target."""
    import keras

    from tfgap.advisor import advise_model, measure_noise_scales
    from tfgap.advisor.measure import curvature_batch_size

    model = build(trainer.workload["model"], TUNING_SEED)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    per_epoch = len(trainer.x) // SMALL_BATCH
    t0 = time.time()
    advice = advise_model(model, trainer.x, trainer.y, batch_size=SMALL_BATCH,
                          max_batch_size=max(BATCHES), epochs=small_steps / per_epoch, seed=0)
    seconds = time.time() - t0
    log(f"  {trainer.name}: advise_model {seconds:.0f} s: B_noise {advice.b_noise} B_simple "
        f"{advice.b_simple:.0f}, recommended {advice.recommended.batch_size}")
    # At the target: a held-out run at the small batch, then the same measurement there.
    record = trainer.run(SMALL_BATCH, lr, HELD_OUT_SEEDS[0], math.ceil(small_steps * 1.2))
    b = curvature_batch_size(SMALL_BATCH, advice.b_simple, len(trainer.x))
    at_target = measure_noise_scales(trainer.model, trainer.x, trainer.y, batch_size=b,
                                     num_draws=32, seed=1, loss=trainer.loss)
    return {"advice": advice.to_dict(), "seconds": seconds,
            "at_target": dict(at_target.to_dict(), step=record["evals"][-1][0])}


def measure_workload(name, args, log):
    import tensorflow as tf

    workload = WORKLOADS[name]
    train, validation = load_data(workload["data"])
    log(f"{name}: {len(train[0])} training, {len(validation[0])} validation signals")
    trainer = Trainer(name, workload, train, validation)
    t0 = time.time()
    os.makedirs(args.output_dir, exist_ok=True)
    cache = os.path.join(args.output_dir, f"{name}.runs.json")  # the runs, before the advisor
    if os.path.exists(cache):
        with open(cache) as f:
            rows = json.load(f)
        log(f"{name}: the runs of {cache}")
    else:
        rows = [measure_batch(trainer, int(b), args, log) for b in args.batches.split(",")]
        with open(cache, "w") as f:
            json.dump(rows, f, separators=(",", ":"))
    small = next(r for r in rows if r["batch_size"] == SMALL_BATCH)
    k = small["tuned"]["val_accuracy"]["k"]
    steps = [_steps(r, "val_accuracy") for r in small["runs"]
             if r["k"] == k and r["seed"] in HELD_OUT_SEEDS]
    result = {"workload": name, **workload, "batches": rows,
              "advisor": advisor(trainer, small["tuned"]["val_accuracy"]["lr"],
                                 float(np.mean(steps)), log),
              "seconds": time.time() - t0,
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "tensorflow": tf.__version__}}
    with open(os.path.join(args.output_dir, f"{name}.json"), "w") as f:
        json.dump(result, f, separators=(",", ":"))
    log(f"{name}: {result['seconds'] / 60:.1f} min")


# -- analysis ----------------------------------------------------------------

def analyse_target(result, target, rng, num_boot):
    from tfgap.advisor import fit_tradeoff

    rows = result["batches"]
    seeds = list(HELD_OUT_SEEDS)
    b = np.array([r["batch_size"] for r in rows], float)

    def steps_at(row, k, sample):
        by_seed = {r["seed"]: _steps(r, target) for r in row["runs"] if r["k"] == k}
        return float(np.mean([by_seed.get(s, math.inf) for s in sample]))

    s = np.array([steps_at(r, r["tuned"][target]["k"], seeds) for r in rows])
    ok = np.isfinite(s)
    fit = fit_tradeoff(b[ok], s[ok])
    boots = []
    for _ in range(num_boot):
        sample = list(rng.choice(seeds, size=len(seeds)))
        values = np.array([steps_at(r, r["tuned"][target]["k"] + int(rng.integers(-1, 2)),
                                    sample) for r in rows])
        good = np.isfinite(values)
        if good.sum() >= 2:
            boots.append(fit_tradeoff(b[good], values[good]).b_crit)
    low, high = np.percentile(boots, [5, 95]) if boots else (math.nan, math.nan)
    return {"batch_sizes": b.tolist(), "steps": [float(v) for v in s],
            "s_min": fit.s_min, "e_min": fit.e_min, "b_crit": fit.b_crit,
            "b_crit_90": [float(low), float(high)], "rms_relative_error": fit.rms_relative_error,
            "tuned_lr": [r["tuned"][target]["lr"] for r in rows],
            "interior": [r["tuned"][target]["interior"] for r in rows]}


RULES = ("gain", "linear", "sqrt", "eps_opt")  # the advice's rate rules, its default first


def current_advice(stored):
    """`advise` of today's code on a stored advice's measurements (B_simple, B_noise, ...).

    The runs and the measurement are expensive, the arithmetic is not: the
    analysis re-derives the prediction with the advisor as it is now.
    """
    from types import SimpleNamespace

    from tfgap.advisor import advise

    scales = SimpleNamespace(**{k: stored[k] for k in (
        "b_noise", "b_noise_stderr", "ratio", "ratio_stderr", "eps_max", "eps_max_stderr")})
    return advise(stored["b_simple"], b_simple_stderr=stored["b_simple_stderr"],
                  small_batch_size=stored["small_batch_size"], epochs=stored["epochs"],
                  num_train_examples=stored["num_train_examples"],
                  learning_rate=stored["learning_rate"], max_batch_size=stored["max_batch_size"],
                  noise_scales=scales if stored["b_noise"] else None,
                  momentum=stored["momentum"])


def analyse(result, num_boot):
    rng = np.random.default_rng(0)
    a = current_advice(result["advisor"]["advice"])
    out = {"workload": result["workload"], "label": result["label"],
           "targets": {t: result[t] for t in TARGETS},
           "predicted": {"b_crit": a.b_crit, "b_crit_stderr": a.b_crit_stderr,
                         "b_crit_source": a.b_crit_source, "b_noise": a.b_noise,
                         "b_noise_stderr": a.b_noise_stderr, "b_simple": a.b_simple,
                         "b_simple_stderr": a.b_simple_stderr, "eps_max": a.eps_max,
                         "recommended": a.recommended.batch_size,
                         "learning_rate_rule": a.learning_rate_rule,
                         "product": a.settings.get("curvature_product")},
           "at_target": {k: result["advisor"]["at_target"][k]
                         for k in ("b_simple", "b_noise", "eps_max", "step")}}
    by_batch = {c.batch_size: c for c in a.candidates}
    for target in TARGETS:
        m = analyse_target(result, target, rng, num_boot)
        m["ratio"] = a.b_crit / m["b_crit"]
        m["ratio_b_noise"] = a.b_noise / m["b_crit"] if a.b_noise else None
        # Each rule's rate at the measured batch sizes above the small batch (at the small
        # batch every rule but eps_opt is the tuned rate it was given), and how many sqrt(2)
        # grid steps it lies from the tuned rate.
        m["rates"], m["steps_off"] = {}, {}
        for rule in RULES:
            rates = [a.learning_rate_of(by_batch[int(b)], rule) if b > SMALL_BATCH else None
                     for b in m["batch_sizes"]]
            m["rates"][rule] = rates
            m["steps_off"][rule] = [None if r is None else math.log(r / t) / math.log(STEP)
                                    for r, t in zip(rates, m["tuned_lr"])]
        out[target] = m
    return out


def _within(steps_off):
    values = [abs(v) <= 1.0 + 1e-9 for v in steps_off if v is not None]
    return sum(values), len(values)


def markdown(summaries):
    lines = ["| workload | target | measured B_crit (90% bootstrap) | predicted B_crit = B_simple "
             "(+- s.e.) | predicted / measured | B_noise / measured | rates tuned inside the "
             "grid |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        p = s["predicted"]
        for target in TARGETS:
            m = s[target]
            lines.append(
                f"| {s['workload']} | {target.replace('_', ' ')} {s['targets'][target]} | "
                f"{m['b_crit']:.0f} ({m['b_crit_90'][0]:.0f}-{m['b_crit_90'][1]:.0f}) | "
                f"{p['b_crit']:.0f} +- {p['b_crit_stderr']:.0f} | {m['ratio']:.2f} | "
                + (f"{m['ratio_b_noise']:.2f}" if m["ratio_b_noise"] else "-")
                + f" | {sum(m['interior'])}/{len(m['interior'])} |")
    lines += ["", "Rate rules within one sqrt(2) step of the tuned rate, at the batch sizes "
              "above the small batch:", "",
              "| target | " + " | ".join(RULES) + " |", "|---" * (len(RULES) + 1) + "|"]
    for target in TARGETS:
        counts = [tuple(map(sum, zip(*[_within(s[target]["steps_off"][rule])
                                       for s in summaries]))) for rule in RULES]
        lines.append(f"| {target.replace('_', ' ')} | "
                     + " | ".join(f"{k}/{n}" for k, n in counts) + " |")
    lines += ["", "| workload | B | tuned lr: val acc, train loss | "
              + " | ".join(f"lr {rule}" for rule in RULES)
              + " | steps to val acc (held-out mean) | steps to train loss |",
              "|---" * (5 + len(RULES)) + "|"]
    for s in summaries:
        v, t = s["val_accuracy"], s["train_loss"]
        for i, b in enumerate(v["batch_sizes"]):
            rates = [v["rates"][rule][i] for rule in RULES]
            lines.append(f"| {s['workload']} | {b:.0f} | {v['tuned_lr'][i]:.3g}, "
                         f"{t['tuned_lr'][i]:.3g} | "
                         + " | ".join("-" if r is None else f"{r:.3g}" for r in rates)
                         + f" | {v['steps'][i]:.0f} | {t['steps'][i]:.0f} |")
    return "\n".join(lines)


def plot(summaries, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.4))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    grid = np.geomspace(10, 1600, 200)
    for s, color in zip(summaries, ("C0", "C3", "C2", "C4")):
        m = s["val_accuracy"]
        b = np.array(m["batch_sizes"])
        ax.plot(b, m["steps"], "o", color=color, label=f"{s['workload']}: measured")
        ax.plot(grid, m["s_min"] + m["e_min"] / grid, "--", color=color,
                label=f"fit, B_crit {m['b_crit']:.0f}")
        ax.axvline(s["predicted"]["b_crit"], color=color, lw=1, alpha=0.6)
        ax2.plot(b, m["tuned_lr"], "o", color=color, label=f"{s['workload']}: tuned")
        above = b > SMALL_BATCH
        ax2.plot(b[above], np.array(m["rates"]["gain"], dtype=float)[above], "-", color=color,
                 label="advised (gain rule)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B",
           ylabel="steps to the target validation accuracy",
           title="Measured steps (held-out seeds); vertical: predicted B_crit")
    ax.legend(fontsize=7)
    ax2.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="learning rate",
            title="Tuned rate (validation target) and the advised rate")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if not args.analyse:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        if str(SMALL_BATCH) not in args.batches.split(","):
            sys.exit(f"--batches must include the small batch {SMALL_BATCH}")
        for name in args.workloads.split(","):
            measure_workload(name, args, log)
        return
    summaries = []
    for name in WORKLOADS:
        path = os.path.join(args.output_dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                summaries.append(analyse(json.load(f), args.bootstrap))
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summaries, f, indent=1)
    plot(summaries, args.figure)
    print(markdown(summaries))


if __name__ == "__main__":
    main()
