"""Validates the batch-size advisor: predicted against measured steps to a target on MNIST-1D.

For two models on MNIST-1D (the study's 3 x 128 BN MLP from `tfgap.models`
and a small 1-D BN CNN built here), this script

1. measures the real steps `S(B)` to a target VALIDATION accuracy at batch
   sizes 16 to 2048 (SGD, momentum 0.9, a constant learning rate tuned per
   batch size on the validation split over a factor-2 grid, seed 0; then the
   best rate is run again with more seeds and `S(B)` is their mean);
2. fits McCandlish et al.'s `(S / S_min - 1) (E / E_min - 1) = 1` by
   least squares (`tfgap.advisor.fit_tradeoff`); `B_crit = E_min / S_min`,
   with a bootstrap interval over seeds;
3. runs the advisor's measurement at the small batch `B_small = 32` with the
   rate tuned there, along the way to the target: `B_simple` at eight points,
   pooled over the second half (what the advise command does by default over
   the regime's first constant-rate phase); for comparison, over the first
   quarter of the way only (four points, pooled over the last two) and at the
   target alone;
4. predicts `S(B) = S_min (1 + B_simple / B)` with
   `S_min = S(B_small) / (1 + B_simple / B_small)` (`tfgap.advisor`), and
   compares it with the measurement: the ratio `B_simple / B_crit`, a figure
   and a Markdown table.

The validation split is tfgap's (`validation_examples=1000`: the last 1000
of the 4000 training signals; the model trains on the other 3000). Targets:
58% for the MLP, 80% for the CNN (reached at every batch size with a
constant rate; the MLP's accuracy at large batches levels off not far above).

Usage:

    python benchmarks/advisor_validation.py                       # ~15 min on 2 CPU cores
    python benchmarks/advisor_validation.py --models=mlp --batches=16,64,256,1024
    python benchmarks/advisor_validation.py --replot              # figure from the JSON

Writes `<output_dir>/advisor_validation.json` and the figure
`docs/images/advisor_validation.png`, and prints the tables.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048)
SMALL_BATCH = 32
VALIDATION_EXAMPLES = 1000
MODELS = {
    # name: target validation accuracy, rate at REF_BATCH (sqrt-scaled grid centre)
    "mlp": dict(target=0.58, lr=0.02, label="MLP 3x128 + BN (tfgap.models 'mlp')"),
    "cnn": dict(target=0.80, lr=0.02, label="1-D CNN 3x32 + BN"),
}
REF_BATCH = 50
# The advise command's default: 8 points along the regime's first constant-rate phase (here:
# the way to the target at B_small), pooled over its second half. A quarter run for comparison.
DEFAULT_POINTS = 8
QUARTER = 0.25


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--seeds", type=int, default=2, help="runs at the best rate per batch")
    parser.add_argument("--max_steps", type=int, default=4000)
    parser.add_argument("--output_dir", default="/tmp/tfgap_advisor_validation")
    parser.add_argument("--figure", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images",
        "advisor_validation.png"))
    parser.add_argument("--replot", action="store_true", help="only redraw from the JSON")
    return parser.parse_args(argv)


# -- training ----------------------------------------------------------------

def load_data():
    from tfgap import data

    def arrays(split):
        ds = data.build_dataset("mnist1d", split, batch_size=4096, training=False,
                                shuffle=False, validation_examples=VALIDATION_EXAMPLES)
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
        return np.concatenate(xs), np.concatenate(ys)

    return arrays("train"), arrays("validation")


def build(name, seed):
    import keras

    from tfgap import models

    if name == "mlp":
        return models.build_model("mlp", num_classes=10, input_shape=(40,), mlp_width=128,
                                  mlp_depth=3, seed=seed)
    inputs = keras.Input((40,))
    x = keras.layers.Reshape((40, 1))(inputs)
    for i, strides in enumerate((1, 2, 2)):
        x = keras.layers.Conv1D(32, 5, strides=strides, padding="same", use_bias=False,
                                kernel_initializer=keras.initializers.HeNormal(seed * 100 + i))(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(
        seed * 100 + 9))(x)
    return keras.Model(inputs, outputs, name="cnn1d")


class Trainer:
    """One model and optimizer per architecture, reset per run (one trace for all runs)."""

    def __init__(self, name, train, validation):
        import keras
        import tensorflow as tf

        self.name = name
        self.x, self.y = train
        self.model = build(name, 0)
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
        def accuracy():
            pred = tf.argmax(model(xv, training=False), -1, output_type=tf.int32)
            return tf.reduce_mean(tf.cast(tf.equal(pred, yv), tf.float32))

        self._step, self._accuracy = step, accuracy

    def reset(self, lr, seed):
        import keras

        if seed not in self._init:
            self._init[seed] = build(self.name, seed).get_weights()
        self.model.set_weights(self._init[seed])
        for v in self.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        self.optimizer.learning_rate = lr
        keras.utils.set_random_seed(seed)

    def run(self, batch, lr, seed, target, max_steps, measure_at=()):
        """Steps until the validation accuracy first reaches `target` (inf if never)."""
        from tfgap.advisor import measure_noise_scale

        self.reset(lr, seed)
        rng = np.random.default_rng(seed)
        n = len(self.x)
        per_epoch = n // batch
        measure_at = sorted(set(measure_at))
        estimates, step, next_eval, best = [], 0, 1, 0.0
        reached = math.inf
        while step < max_steps and (reached == math.inf or step < (measure_at or [0])[-1]):
            if step % per_epoch == 0:
                order = rng.permutation(n).astype("int32")
            i = step % per_epoch
            self._step(order[i * batch:(i + 1) * batch])
            step += 1
            if step in measure_at:
                estimates.append(measure_noise_scale(
                    self.model, self.x, self.y, batch_size=batch, num_chunks=8, seed=step,
                    loss=self.loss, step=step))
            if reached == math.inf and step >= next_eval:
                acc = float(self._accuracy())
                best = max(best, acc)
                if acc >= target:
                    reached = step
                next_eval = step + 1 if step < 20 else max(step + 1, math.ceil(step * 1.04))
        return reached, best, estimates


def sweep(trainer, batch, target, args, log):
    """Tunes the constant rate at `batch` (seed 0), then runs it with `args.seeds` seeds."""
    centre = MODELS[trainer.name]["lr"] * math.sqrt(batch / REF_BATCH)
    tried = {}

    def trial(k):
        lr = centre * 2.0**k
        finite = [s for s in tried.values() if s < math.inf]
        cap = min(args.max_steps, math.ceil(1.5 * min(finite))) if finite else args.max_steps
        tried[k] = trainer.run(batch, lr, 0, target, cap)[0]
        log(f"  {trainer.name} B={batch:5d} lr={lr:.4g}: "
            f"{tried[k] if tried[k] < math.inf else '>' + str(cap)} steps")

    for k in (0, 1, -1):
        trial(k)
    for _ in range(3):  # widen the grid while the best rate sits on an edge
        best_k = min(tried, key=lambda k: (tried[k], k))
        if tried[best_k] == math.inf:
            edge = max(tried) + 1
        elif best_k == min(tried):
            edge = best_k - 1
        elif best_k == max(tried):
            edge = best_k + 1
        else:
            break
        trial(edge)
    best_k = min(tried, key=lambda k: (tried[k], k))
    lr = centre * 2.0**best_k
    steps = [tried[best_k]] + [trainer.run(batch, lr, seed, target, args.max_steps)[0]
                               for seed in range(1, args.seeds)]
    log(f"  {trainer.name} B={batch:5d} best lr={lr:.4g}: steps {steps}")
    return {"batch_size": batch, "lr": lr,
            "grid": {f"{centre * 2.0**k:.6g}": (s if s < math.inf else None)
                     for k, s in sorted(tried.items())},
            "steps": [s if s < math.inf else None for s in steps]}


def advisor_measurement(trainer, small, target, small_steps):
    """The noise scale along the way to the target at the small batch (seed 0's run)."""
    from tfgap.advisor.measure import measurement_steps

    quarter = max(4, round(QUARTER * small_steps))
    at = sorted(set(measurement_steps(small_steps, DEFAULT_POINTS)
                    + measurement_steps(quarter, 4)))
    _, _, estimates = trainer.run(small["batch_size"], small["lr"], 0, target, small_steps,
                                  measure_at=at)
    return {"small_steps": small_steps, "points": [e.to_dict() for e in estimates]}


def pooled_noise_scales(advisor):
    """B_simple as the advise command pools it: over its run (default), a quarter run, the end."""
    from tfgap.advisor import NoiseScaleEstimate, pool_estimates
    from tfgap.advisor.measure import measurement_steps

    points = {p["step"]: NoiseScaleEstimate.from_dict(p) for p in advisor["points"]}
    s = advisor["small_steps"]
    quarter = max(4, round(QUARTER * s))
    out = {}
    for name, steps, at in (("default", s, measurement_steps(s, DEFAULT_POINTS)),
                            ("quarter", quarter, measurement_steps(quarter, 4))):
        pooled = pool_estimates([points[i] for i in at], min_step=steps / 2)
        out[name] = {"b_simple": pooled.b_simple, "b_simple_stderr": pooled.b_simple_stderr,
                     "steps": list(pooled.steps)}
    last = points[max(points)]
    out["end"] = {"b_simple": last.b_simple, "b_simple_stderr": last.b_simple_stderr,
                  "steps": [last.step]}
    return out


# -- analysis ----------------------------------------------------------------

def analyse(result, rng):
    from tfgap.advisor import fit_tradeoff, min_steps, predicted_steps

    rows = [r for r in result["batches"] if None not in r["steps"]]
    b = np.array([r["batch_size"] for r in rows], float)
    s = np.array([np.mean(r["steps"]) for r in rows])
    fit = fit_tradeoff(b, s)
    boots = []
    for _ in range(2000):
        sample = [np.mean(rng.choice(r["steps"], size=len(r["steps"]))) for r in rows]
        boots.append(fit_tradeoff(b, sample).b_crit)
    low, high = np.percentile(boots, [16, 84])
    small = next(r for r in rows if r["batch_size"] == SMALL_BATCH)
    result["b_simple"] = pooled = pooled_noise_scales(result["advisor"])
    noise = pooled["default"]
    s_min_pred = min_steps(np.mean(small["steps"]), SMALL_BATCH, b_noise=noise["b_simple"])
    for r in result["batches"]:
        r["predicted_steps"] = predicted_steps(r["batch_size"], b_noise=noise["b_simple"],
                                               s_min=s_min_pred)
        r["fitted_steps"] = fit.steps(r["batch_size"])
    result["fit"] = {"s_min": fit.s_min, "e_min": fit.e_min, "b_crit": fit.b_crit,
                     "b_crit_68": [float(low), float(high)],
                     "rms_relative_error": fit.rms_relative_error}
    result["predicted"] = {"s_min": s_min_pred, "e_min": s_min_pred * noise["b_simple"],
                           "b_crit": noise["b_simple"]}
    result["ratio"] = {k: v["b_simple"] / fit.b_crit for k, v in pooled.items()}
    return result


def markdown(results):
    lines = ["| model | target | B | lr | measured steps (per seed) | fitted | predicted "
             "| predicted / measured |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["batches"]:
            measured = r["steps"]
            mean = np.mean(measured) if None not in measured else None
            lines.append(
                f"| {res['model']} | {res['target']:.0%} | {r['batch_size']} | {r['lr']:.3g} | "
                + (f"{mean:.0f} ({', '.join(str(s) for s in measured)})" if mean else
                   f"not reached ({measured})")
                + f" | {r['fitted_steps']:.0f} | {r['predicted_steps']:.0f} | "
                + (f"{r['predicted_steps'] / mean:.2f}" if mean else "-") + " |")
    lines += ["", "| model | B_simple: advisor default (+- s.e.) | quarter run | at the target "
              "| S_min fit | E_min fit | B_crit measured (68% bootstrap) | B_simple / B_crit: "
              "default, quarter, target |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        b, f, r = res["b_simple"], res["fit"], res["ratio"]
        cell = lambda k: f"{b[k]['b_simple']:.0f} +- {b[k]['b_simple_stderr']:.0f}"  # noqa: E731
        lines.append(
            f"| {res['model']} | {cell('default')} | {cell('quarter')} | {cell('end')} | "
            f"{f['s_min']:.1f} | {f['e_min']:.0f} | "
            f"{f['b_crit']:.0f} ({f['b_crit_68'][0]:.0f}-{f['b_crit_68'][1]:.0f}) | "
            f"{r['default']:.2f}, {r['quarter']:.2f}, {r['end']:.2f} |")
    return "\n".join(lines)


def plot(results, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    grid = np.geomspace(8, 4096, 200)
    for res, color in zip(results, ("C0", "C3")):
        rows = [r for r in res["batches"] if None not in r["steps"]]
        b = np.array([r["batch_size"] for r in rows])
        per_seed = [r["steps"] for r in rows]
        mean = np.array([np.mean(s) for s in per_seed])
        lo = mean - np.array([min(s) for s in per_seed])
        hi = np.array([max(s) for s in per_seed]) - mean
        f, p, a = res["fit"], res["predicted"], res["b_simple"]["default"]
        ax.errorbar(b, mean, yerr=[lo, hi], fmt="o", color=color, capsize=3,
                    label=f"{res['model']}: measured (target {res['target']:.0%})")
        ax.plot(grid, f["s_min"] + f["e_min"] / grid, "--", color=color,
                label=f"fit, B_crit = {f['b_crit']:.0f}")
        ax.plot(grid, p["s_min"] * (1 + a["b_simple"] / grid), "-", color=color, alpha=0.7,
                label=f"advisor, B_simple = {a['b_simple']:.0f} +- {a['b_simple_stderr']:.0f}")
        band = [p["s_min"] * (1 + (a["b_simple"] + d * a["b_simple_stderr"]) / grid)
                * (1 + a["b_simple"] / SMALL_BATCH) / (1 + (a["b_simple"] + d * a[
                    "b_simple_stderr"]) / SMALL_BATCH) for d in (-1, 1)]
        ax.fill_between(grid, band[0], band[1], color=color, alpha=0.12, linewidth=0)
        e = b * mean
        ax2.plot(e / f["e_min"], mean / f["s_min"], "o", color=color, label=res["model"])
    x = np.geomspace(1.02, 300, 200)
    ax2.plot(x, 1 + 1 / (x - 1), "k-", lw=1, label="(S/S_min - 1)(E/E_min - 1) = 1")
    ax.set(xscale="log", yscale="log", xlabel="batch size B",
           ylabel="steps to the target validation accuracy",
           title="Steps to target: measured, fitted, predicted")
    ax.legend(fontsize=7)
    ax2.set(xscale="log", yscale="log", xlabel="E / E_min (examples)",
            ylabel="S / S_min (steps)", title="The trade-off (fitted S_min, E_min)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    json_path = os.path.join(args.output_dir, "advisor_validation.json")
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.replot:
        with open(json_path) as f:
            results = json.load(f)["results"]
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        started = time.time()
        train, validation = load_data()
        log(f"MNIST-1D: {len(train[0])} training, {len(validation[0])} validation signals")
        batches = [int(b) for b in args.batches.split(",")]
        if SMALL_BATCH not in batches:
            sys.exit(f"--batches must include the small batch {SMALL_BATCH}")
        results = []
        for name in args.models.split(","):
            t0 = time.time()
            target = MODELS[name]["target"]
            trainer = Trainer(name, train, validation)
            rows = [sweep(trainer, b, target, args, log) for b in batches]
            small = next(r for r in rows if r["batch_size"] == SMALL_BATCH)
            if None in small["steps"]:
                sys.exit(f"{name}: the small batch never reached the target; lower it")
            advisor = advisor_measurement(trainer, small, target,
                                          int(round(np.mean(small["steps"]))))
            log(f"  {name}: B_simple along the way: " + ", ".join(
                f"{p['step']}: {float(p['b_simple']):.0f}" for p in advisor["points"]))
            result = {"model": name, "label": MODELS[name]["label"], "target": target,
                      "batches": rows, "advisor": advisor, "seconds": time.time() - t0}
            results.append(result)
            with open(json_path, "w") as f:  # after each model; --replot re-analyses
                json.dump({"results": results, "seconds": time.time() - started,
                           "machine": {"platform": platform.platform(),
                                       "cpu_count": os.cpu_count(),
                                       "tensorflow": tf.__version__}}, f, indent=2)
    results = [analyse(res, np.random.default_rng(0)) for res in results]
    plot(results, args.figure)
    print(markdown(results))
    for res in results:
        r = res["ratio"]
        print(f"{res['model']}: B_simple / B_crit(measured) = {r['default']:.2f} (advisor "
              f"default), {r['quarter']:.2f} (quarter run), {r['end']:.2f} (at the target)")
    print(f"Wrote {json_path} and {os.path.abspath(args.figure)}")


if __name__ == "__main__":
    main()
