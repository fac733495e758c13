"""Evidence for the trainer's `adaptive="lr"` (AdaScale, Johnson et al. 2020) on MNIST-1D.

The question: the small batch's regime (the `mnist1d` recipe: batch 50, lr
0.04, / 10 at epoch 7, 10 epochs, `T0 = 640` steps) run at a larger batch `B`
with `adaptive="lr"` and no per-batch tuning, does it

(a) reach the target validation accuracy in <= 1.15x the steps of the best
    *tuned* fixed-batch run at the same `B`, and
(b) end with a test accuracy within the small batch's seed spread (paired by
    seed, with an interval)?

Runs (one process, one after another; the recipe's model, data and
settings everywhere, no SavedModel export, a temporary `model_dir` each):

- `small`: the recipe at batch 50, on the report seeds (`--seeds`, default
  1,2,3);
- `adaptive`: batch `B` (default 400, S = 8), `base_batch_size=50`,
  `adaptive="lr"`, `lr_scaling="none"`, the recipe's regime untouched, on the
  report seeds;
- `fixed`: batch `B`, a constant rate `lr` for the first 70% of `E` epochs,
  `lr / 10` after (the recipe's shape; for `E >= 10` this is
  `regime_adaptation=E/10` of the recipe at base batch `B`), `lr_scaling=
  "none"`. Both `lr` and `E` are tuned on seed 0 (`--tuning_seed`), which
  is not a report seed: `lr` on a sqrt(2)-spaced grid from 0.04 * 2 (below
  the sqrt-scaled 0.04 * sqrt(S)) to 0.04 * S * sqrt(2) (above the linearly
  scaled rate), `E` on a sqrt(2)-spaced grid from 5 to 80 epochs (40 to 640
  steps at B = 400: 80 epochs is `T0` steps). Each grid is widened (a
  neighbour added on the side of the best) until the best lies strictly
  inside it (at most `MAX_WIDEN` times; `E` not below 1 epoch). The best:
  the fewest steps to the target on seed 0; ties by the higher final
  validation accuracy. Ties are common: a run that crosses the target before
  its drop crosses it at the same step at every longer length (the same
  seed, the same steps until the drop), so a grid counts as wide enough when
  one of the rates and one of the lengths that reach the target in the
  fewest steps lie strictly inside it. The chosen `(lr, E)` then runs on the
  report seeds.

Target: `--target_fraction` (0.9) times the small batch's mean final
validation accuracy over the report seeds, rounded to 0.005 (or `--target`).
Steps to the target: the first evaluation (every epoch; the history's
per-epoch `val_accuracy`) at or above it, interpolated linearly in steps
between it and the evaluation before (`inf` if never reached; the first
evaluation's step if it is the first one).

Report (`<out>/summary.json`, `<out>/summary.md`): per seed and mean, the
steps to the target of `adaptive` and the tuned `fixed` run, their ratio with
a paired t-interval of the log ratio over seeds (geometric mean; with 3
seeds, 2 degrees of freedom: a wide interval), the final test accuracy of
`adaptive` against `small` paired by seed (differences, t-interval), and the
small batch's seed spread (min-max). Criterion (a): the geometric mean ratio
<= 1.15 (the interval says how sure); criterion (b): the mean adaptive test
accuracy inside the small batch's [min, max] over the report seeds (and the
paired interval beside it).

Every run's record is cached in `<out>/<run>.json` (per-epoch history, the
result; for `adaptive` each step's gain, progress and rate) and reused when
its settings are unchanged. The figure (`--figure`) shows one adaptive run:
the gain, the learning rate and B_simple over steps, and the validation
accuracy of the three runs of that seed against the target.

Usage:

    python benchmarks/adaptive_evidence.py --oracle_epochs=10,20  # B = 400, seeds 1,2,3
    python benchmarks/adaptive_evidence.py --seeds=1,2,3,4,5,6,7,8,9,10 --target=0.6 \\
        --summary_name=summary_seeds1-10 --figure=''            # the same target, 10 seeds

(about 7 + 4 + 4 minutes on a shared 2-core CPU, one process; cached runs are
reused, so the second command trains only seeds 4-10.)

`--mode=batch` (`main_batch`): `adaptive="batch"` instead, the first epoch at
batch 50, `base_batch_size=50`, `max_batch_size=--max_batch`, `lr_scaling=
"none"`, the recipe's regime untouched, cached as `adabatch_max<B>_seed<s>.json`,
against the cached tuned fixed batch `--max_batch` (its rate and length read
from `<out>/summary.json`, or `--fixed_lr`, `--fixed_epochs`) and the cached
batch-50 runs of the same seeds; the same criteria, plus examples processed,
the batch of each epoch and wall times. The controller decides on wall-clock
step times, so its batch sequence depends on the machine's load:

    python benchmarks/adaptive_evidence.py --mode=batch --max_batch=400 --seeds=1,2,3,4,5 \
        --target=0.6 --summary_name=summary_batch400 --figure=''
    python benchmarks/adaptive_evidence.py --mode=batch --max_batch=400 \
        --seeds=1,2,3,4,5,6,7,8,9,10 --target=0.6 --summary_name=summary_batch400_seeds1-10 \
        --figure=''

(about 15 s a run; the second command trains only seeds 6-10.)

`--step_times=flat` pins the step times the controller decides on (every step
as long whatever its batch: an accelerator's best case; the training is real);
`--decision_steps=N` decides every N steps within epochs too
(`batch_decision_steps`); `--select_decision_steps=0,2,4,8,16` chooses N on
`--tuning_seed` (the fewest steps to the target) before the report seeds:

    python benchmarks/adaptive_evidence.py --mode=batch --max_batch=400 \
        --select_decision_steps=0,2,4,8,16 --seeds=1,2,3,4,5,6,7,8,9,10 --target=0.6 \
        --summary_name=summary_batch400_measured_selected_seeds1-10 --figure=''
    python benchmarks/adaptive_evidence.py --mode=batch --max_batch=400 --step_times=flat \
        --select_decision_steps=0,2,4,8,16 --seeds=1,2,3,4,5,6,7,8,9,10 --target=0.6 \
        --summary_name=summary_batch400_flat_selected_seeds1-10 --figure=''
"""

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

BASE_BATCH = 50
BASE_LR = 0.04
STEP = math.sqrt(2.0)
DROP_FRACTION = 0.7  # the recipe's drop: epoch 7 of 10
MAX_WIDEN = 4
MIN_EPOCHS = 1.0
QUIET_FILE = "/tmp/tfgap_quiet"
FLAT_SECONDS = 0.01  # --step_times=flat: any constant decides the same (goodput's ratios)
HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT_DIR = os.path.join(HERE, "results", "adaptive_evidence")
FIGURE = os.path.join(HERE, "..", "docs", "images", "adaptive_gain.png")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="report seeds (held out from tuning)")
    parser.add_argument("--tuning_seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--out", default=OUTPUT_DIR)
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy target (default: target_fraction x the "
                             "small batch's mean final validation accuracy)")
    parser.add_argument("--target_fraction", type=float, default=0.9)
    parser.add_argument("--max_ratio", type=float, default=1.15, help="criterion (a)")
    parser.add_argument("--oracle_epochs", default="",
                        help="also the per-seed oracle: every rate of the tuned grid at these "
                             "lengths (comma-separated epochs) on each report seed, the best "
                             "one per seed (tuned on the report seed itself: optimistic for "
                             "the fixed batch); '' for none")
    parser.add_argument("--summary_name", default="summary")
    parser.add_argument("--figure", default=FIGURE, help="'' for none")
    parser.add_argument("--figure_seed", type=int, default=None,
                        help="the adaptive seed shown (default: the first report seed)")
    parser.add_argument("--mode", default="lr", choices=("lr", "batch"),
                        help="'lr' (default): adaptive='lr' at --batch as above; 'batch': "
                             "adaptive='batch' from batch 50 up to --max_batch against the "
                             "cached tuned fixed batch --max_batch (see main_batch)")
    parser.add_argument("--max_batch", type=int, default=400,
                        help="--mode=batch: max_batch_size (the tuned fixed batch compared)")
    parser.add_argument("--fixed_lr", type=float, default=None,
                        help="--mode=batch: the tuned fixed rate (default: read from "
                             "<out>/summary.json's tuned_fixed when its batch is --max_batch)")
    parser.add_argument("--step_times", default="measured", choices=("measured", "flat"),
                        help="--mode=batch: the step times the controller decides on: the "
                             "measured wall times, or 'flat': every step recorded as "
                             "FLAT_SECONDS whatever its batch (perfect data-parallel scaling "
                             "up to --max_batch, an accelerator's best case; the training "
                             "itself is real)")
    parser.add_argument("--decision_steps", type=int, default=0,
                        help="--mode=batch: batch_decision_steps (0: decide at epoch starts "
                             "only; N: also every N steps within an epoch)")
    parser.add_argument("--select_decision_steps", default="",
                        help="--mode=batch: candidate batch_decision_steps (e.g. 0,2,4,8,16) "
                             "run on --tuning_seed; the one with the fewest steps to the "
                             "target (ties: the larger) replaces --decision_steps for the "
                             "report seeds")
    parser.add_argument("--fixed_epochs", type=float, default=None,
                        help="--mode=batch: the tuned fixed length in epochs (as --fixed_lr)")
    return parser.parse_args(argv)


# -- runs --------------------------------------------------------------------

def wait_quiet():
    """Waits while someone else needs the CPU (`/tmp/tfgap_quiet` exists)."""
    announced = False
    while os.path.exists(QUIET_FILE):
        if not announced:
            print(f"{QUIET_FILE} exists: waiting", file=sys.stderr, flush=True)
            announced = True
        time.sleep(30)


def recipe_settings():
    from tfgap.recipes.defaults import recipe_defaults

    return recipe_defaults("mnist1d")


def small_settings(seed):
    return dict(recipe_settings(), seed=seed)


def adaptive_settings(batch, seed):
    return dict(recipe_settings(), batch_size=batch, base_batch_size=BASE_BATCH,
                adaptive="lr", lr_scaling="none", regime_adaptation=False, seed=seed)


def fixed_settings(batch, lr, epochs, seed):
    return dict(recipe_settings(), batch_size=batch, base_batch_size=batch, epochs=epochs,
                lr_boundaries=(round(DROP_FRACTION * epochs, 6),),
                lr_values=(lr, lr / 10), lr_scaling="none", regime_adaptation=False,
                seed=seed)


class StepRecorder:
    """Keeps each step's logged learning rate (and gain, progress, loss)."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.rows.append({k: float(logs[k]) for k in ("step", "learning_rate", "gain",
                                                      "progress", "step_loss", "batch_size")
                          if k in logs})


def _jsonable(settings):
    return json.loads(json.dumps(settings, default=list))


def run(name, settings, out, record_steps=False, batch_step_time=None):
    """Trains `settings` (a `TrainConfig`'s fields) or reuses `<out>/<name>.json`.

    `batch_step_time`: `train`'s (adaptive="batch": the step times its controller records).
    """
    path = os.path.join(out, name + ".json")
    wanted = _jsonable(settings)
    if os.path.exists(path):
        with open(path) as f:
            cached = json.load(f)
        if cached["settings"] == wanted:
            return cached
        print(f"{name}: settings changed, running again", file=sys.stderr)
    import keras

    from tfgap.training import TrainConfig, train

    wait_quiet()
    model_dir = tempfile.mkdtemp(prefix=f"adaptive_evidence_{name}_")
    recorder = StepRecorder()
    callbacks = [keras.callbacks.LambdaCallback(
        on_train_batch_end=recorder.on_train_batch_end)] if record_steps else []
    started = time.time()
    try:
        config = TrainConfig(**settings, model_dir=model_dir, export_dir=None, verbose=0,
                             preemption=False, strategy="one_device")
        with open(os.devnull, "w") as quiet:
            result = train(config, callbacks=callbacks, stream=quiet,
                           batch_step_time=batch_step_time)
        with open(os.path.join(model_dir, "history.json")) as f:
            history = json.load(f)["history"]
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    wall = time.time() - started
    record = {
        "name": name, "settings": wanted, "wall_seconds": round(wall, 2),
        "result": {k: result[k] for k in ("status", "global_step", "epochs_completed",
                                          "validation", "test", "train", "steps_per_epoch",
                                          "stretch")},
        "adascale": result.get("adascale"),
        "history": history,
    }
    if result.get("batch_control") is not None:  # adaptive="batch" runs only
        record["batch_control"] = result["batch_control"]
        record["result"]["wall_time"] = result["wall_time"]
        record["load_average_after"] = list(os.getloadavg())
    if record_steps:
        record["steps"] = recorder.rows
    os.makedirs(out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"{name}: {result['global_step']} steps, val {result['validation']['accuracy']:.4f}, "
          f"test {result['test']['accuracy']:.4f}, {wall:.1f} s", file=sys.stderr, flush=True)
    return record


# -- measurements ------------------------------------------------------------

def curve(record):
    """`(steps, val_accuracy)` of a run's evaluated epochs."""
    rows = [h for h in record["history"] if "val_accuracy" in h]
    return [h["step"] for h in rows], [h["val_accuracy"] for h in rows]


def steps_to_target(steps, values, target):
    """First crossing of `target`, linear in steps between the evaluations around it.

    >>> steps_to_target([8, 16, 24], [0.4, 0.5, 0.7], 0.6)
    20.0
    >>> steps_to_target([8, 16], [0.4, 0.5], 0.6)
    inf
    """
    for i, v in enumerate(values):
        if v >= target:
            if i == 0:
                return float(steps[0])
            s0, v0 = steps[i - 1], values[i - 1]
            return float(s0 + (target - v0) / (v - v0) * (steps[i] - s0))
    return math.inf


def t_interval(values, level=0.95):
    """Mean and two-sided t-interval of `values` (None when fewer than 2)."""
    from scipy import stats

    v = np.asarray(values, float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, None
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return mean, [float(mean - half), float(mean + half)]


def lr_grid(batch):
    """The initial sqrt(2)-spaced rate grid: 0.04 * 2 to 0.04 * S * sqrt(2)."""
    scale = batch / BASE_BATCH
    lo, hi = math.log(2.0, STEP), math.log(scale * STEP, STEP)
    return [round(BASE_LR * STEP ** k, 6) for k in range(round(lo), round(hi) + 1)]


def epochs_grid(batch):
    """The initial length grid: 5 to 80 epochs, sqrt(2)-spaced, whole steps."""
    spe = 3200 // batch
    return [round(5 * STEP ** j * spe) / spe for j in range(9)]


def neighbour(value, up, spe=None):
    v = value * STEP if up else value / STEP
    return round(round(v * spe) / spe, 6) if spe else round(v, 6)


def tune(args, target):
    """The fixed-batch `(lr, epochs)` with the fewest steps to `target` on the tuning seed."""
    spe = 3200 // args.batch
    lrs, lengths = lr_grid(args.batch), epochs_grid(args.batch)
    table = {}
    widened = []
    for attempt in range(MAX_WIDEN + 1):
        for lr in lrs:
            for e in lengths:
                if (lr, e) not in table:
                    rec = run(fixed_name(args.batch, lr, e, args.tuning_seed),
                              fixed_settings(args.batch, lr, e, args.tuning_seed), args.out)
                    table[lr, e] = (steps_to_target(*curve(rec), target),
                                    rec["result"]["validation"]["accuracy"])
        best = min(table, key=lambda k: (table[k][0], -table[k][1]))
        fewest = table[best][0]
        if not math.isfinite(fewest):
            raise SystemExit("no fixed-batch run reached the target on the tuning seed")
        # The rates and lengths that reach the target in the fewest steps (ties are common:
        # a run that crosses before its drop crosses at the same step at every longer length).
        lr_best = {lr for (lr, e) in table if table[lr, e][0] == fewest}
        e_best = {e for (lr, e) in table if table[lr, e][0] == fewest}
        lr_inside = any(lrs[0] < lr < lrs[-1] for lr in lr_best)
        e_inside = any(e < lengths[-1] for e in e_best) and (
            any(e > lengths[0] for e in e_best) or lengths[0] <= MIN_EPOCHS)
        if lr_inside and e_inside:
            break
        if attempt == MAX_WIDEN:
            break
        if not lr_inside:
            up = max(lr_best) == lrs[-1]
            lrs = lrs + [neighbour(lrs[-1], True)] if up else [neighbour(lrs[0], False)] + lrs
            widened.append(f"lr {'up' if up else 'down'}")
        if not e_inside:
            up = max(e_best) == lengths[-1]
            new = neighbour(lengths[-1] if up else lengths[0], up, spe)
            lengths = lengths + [new] if up else [max(new, MIN_EPOCHS)] + lengths
            widened.append(f"epochs {'up' if up else 'down'}")
    inside = lr_inside and e_inside
    grid = [{"lr": lr, "epochs": e, "steps": e * spe, "steps_to_target": table[lr, e][0],
             "final_val_accuracy": table[lr, e][1]} for (lr, e) in sorted(table)]
    return {"lr": best[0], "epochs": best[1], "steps_to_target": fewest,
            "tied_at_fewest": sorted([lr, e] for (lr, e) in table if table[lr, e][0] == fewest),
            "lr_grid": lrs, "epochs_grid": lengths, "widened": widened,
            "best_strictly_inside": inside, "grid": grid}


def fixed_name(batch, lr, epochs, seed):
    return f"fixed_b{batch}_lr{lr:g}_e{epochs:g}_seed{seed}"


def write_summary(args, summary, md):
    """`<out>/<summary_name>.json` and `.md`; prints the Markdown."""
    with open(os.path.join(args.out, args.summary_name + ".json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, args.summary_name + ".md"), "w") as f:
        f.write(md)
    print(md)


def _criteria(per_seed, test_key, max_ratio, ratio_name):
    """Both criteria over the report seeds: (a) the steps ratio's geometric mean and t-interval
    (on the log), (b) the paired test-accuracy difference and the small batch's seed spread."""
    ratios = [p["ratio"] for p in per_seed]
    finite = all(math.isfinite(r) and r > 0 for r in ratios)
    log_mean, log_ci = t_interval(np.log(ratios)) if finite else (math.nan, None)
    diff_mean, diff_ci = t_interval([p["test_difference"] for p in per_seed])
    small_test = [p["small_test_accuracy"] for p in per_seed]
    test = [p[test_key] for p in per_seed]
    spread = [min(small_test), max(small_test)]
    gm = math.exp(log_mean) if finite else math.nan
    return {
        "ratio_geometric_mean": gm,
        "ratio_ci95": [math.exp(x) for x in log_ci] if log_ci else None,
        "ratio_ci_method": f"t-interval of log({ratio_name}) over seeds, "
                           f"{len(per_seed) - 1} degrees of freedom, exponentiated",
        "test_difference_mean": diff_mean, "test_difference_ci95": diff_ci,
        "small_test_spread": spread,
        "criterion_a_met": bool(finite and gm <= max_ratio),
        "criterion_a_each_seed": [bool(r <= max_ratio) for r in ratios],
        "criterion_b_met": bool(spread[0] <= float(np.mean(test)) <= spread[1]),
        "criterion_b_each_seed": [bool(spread[0] <= t <= spread[1]) for t in test],
    }


def main(argv=None):
    args = parse_args(argv)
    if args.mode == "batch":
        return main_batch(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.tuning_seed in seeds:
        raise SystemExit("the tuning seed must not be a report seed")
    if args.batch % BASE_BATCH or args.batch <= BASE_BATCH or 3200 % args.batch:
        raise SystemExit("--batch: a multiple of 50 above 50 that divides 3200")
    os.makedirs(args.out, exist_ok=True)
    started = time.time()

    small = {s: run(f"small_b{BASE_BATCH}_seed{s}", small_settings(s), args.out) for s in seeds}
    small_val = [small[s]["result"]["validation"]["accuracy"] for s in seeds]
    if args.target is None:
        target = round(args.target_fraction * float(np.mean(small_val)) / 0.005) * 0.005
        target = round(target, 4)
        target_rule = (f"{args.target_fraction} x the small batch's mean final validation "
                       f"accuracy {np.mean(small_val):.4f}, rounded to 0.005")
    else:
        target, target_rule = args.target, "given (--target)"
    print(f"target validation accuracy {target} ({target_rule})", file=sys.stderr, flush=True)

    adaptive = {s: run(f"adaptive_b{args.batch}_seed{s}", adaptive_settings(args.batch, s),
                       args.out, record_steps=True) for s in seeds}
    tuned = tune(args, target)
    fixed = {s: run(fixed_name(args.batch, tuned["lr"], tuned["epochs"], s),
                    fixed_settings(args.batch, tuned["lr"], tuned["epochs"], s), args.out)
             for s in seeds}

    oracle = None
    if args.oracle_epochs:
        oracle = {"epochs": [float(e) for e in args.oracle_epochs.split(",")],
                  "lrs": tuned["lr_grid"], "per_seed": []}
        for s in seeds:
            best = None
            for lr in oracle["lrs"]:
                for e in oracle["epochs"]:
                    rec = run(fixed_name(args.batch, lr, e, s),
                              fixed_settings(args.batch, lr, e, s), args.out)
                    st = steps_to_target(*curve(rec), target)
                    if best is None or st < best["steps_to_target"]:
                        best = {"lr": lr, "epochs": e, "steps_to_target": st}
            a_steps = steps_to_target(*curve(adaptive[s]), target)
            oracle["per_seed"].append(dict(best, seed=s, ratio=a_steps / best["steps_to_target"]))
        logs = np.log([p["ratio"] for p in oracle["per_seed"]])
        m, ci = t_interval(logs)
        oracle["ratio_geometric_mean"] = math.exp(m)
        oracle["ratio_ci95"] = [math.exp(x) for x in ci] if ci else None

    per_seed = []
    for s in seeds:
        a_steps = steps_to_target(*curve(adaptive[s]), target)
        f_steps = steps_to_target(*curve(fixed[s]), target)
        per_seed.append({
            "seed": s,
            "small_steps_to_target": steps_to_target(*curve(small[s]), target),
            "small_steps": small[s]["result"]["global_step"],
            "small_val_accuracy": small[s]["result"]["validation"]["accuracy"],
            "small_test_accuracy": small[s]["result"]["test"]["accuracy"],
            "adaptive_steps_to_target": a_steps,
            "adaptive_steps": adaptive[s]["result"]["global_step"],
            "adaptive_progress": adaptive[s]["adascale"]["progress"],
            "adaptive_final_gain": adaptive[s]["adascale"]["gain"],
            "adaptive_val_accuracy": adaptive[s]["result"]["validation"]["accuracy"],
            "adaptive_test_accuracy": adaptive[s]["result"]["test"]["accuracy"],
            "fixed_steps_to_target": f_steps,
            "fixed_steps": fixed[s]["result"]["global_step"],
            "fixed_val_accuracy": fixed[s]["result"]["validation"]["accuracy"],
            "fixed_test_accuracy": fixed[s]["result"]["test"]["accuracy"],
            "ratio": a_steps / f_steps if math.isfinite(f_steps) else (
                math.nan if not math.isfinite(a_steps) else 0.0),
            "test_difference": adaptive[s]["result"]["test"]["accuracy"]
            - small[s]["result"]["test"]["accuracy"],
        })
    small_test = [p["small_test_accuracy"] for p in per_seed]
    adaptive_test = [p["adaptive_test_accuracy"] for p in per_seed]
    criteria = _criteria(per_seed, "adaptive_test_accuracy", args.max_ratio,
                         "adaptive / fixed steps to target")
    summary = {
        "question": "adaptive='lr' at batch B from the batch-50 regime, no tuning: (a) steps to "
                    "the target <= max_ratio x the tuned fixed-batch run's; (b) final test "
                    "accuracy within the small batch's seed spread",
        "batch": args.batch, "base_batch": BASE_BATCH, "seeds": seeds,
        "tuning_seed": args.tuning_seed, "target_val_accuracy": target,
        "target_rule": target_rule, "max_ratio": args.max_ratio,
        "tuned_fixed": tuned,
        "per_seed": per_seed,
        **{k: criteria[k] for k in ("ratio_geometric_mean", "ratio_ci95", "ratio_ci_method")},
        "mean_steps_to_target": {
            k: float(np.mean([p[f"{k}_steps_to_target"] for p in per_seed]))
            for k in ("small", "adaptive", "fixed")},
        "test_accuracy_mean": {"small": float(np.mean(small_test)),
                               "adaptive": float(np.mean(adaptive_test)),
                               "fixed": float(np.mean([p["fixed_test_accuracy"]
                                                       for p in per_seed]))},
        **{k: v for k, v in criteria.items() if not k.startswith("ratio_")},
        "oracle_fixed": oracle,
        "wall_seconds_this_invocation": round(time.time() - started, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
    }
    write_summary(args, summary, markdown(summary))
    if args.figure:
        figure(args, args.figure_seed if args.figure_seed is not None else seeds[0],
               adaptive, small, fixed, target)


# -- --mode=batch ------------------------------------------------------------

def batch_settings(max_batch, seed, decision_steps=0):
    """adaptive='batch': the batch-50 regime, first epoch at 50, free up to `max_batch`,
    decided at epoch starts (and every `decision_steps` steps when > 0)."""
    every = {"batch_decision_steps": decision_steps} if decision_steps else {}
    return dict(recipe_settings(), batch_size=BASE_BATCH, base_batch_size=BASE_BATCH,
                max_batch_size=max_batch, adaptive="batch", lr_scaling="none",
                regime_adaptation=False, seed=seed, **every)


def epoch_batches(record):
    """`[(first step, batch, steps)]` of each epoch of an adaptive='batch' run (its batch at
    the epoch's start, and its steps)."""
    epochs = record["batch_control"]["epochs"]
    last = record["result"]["global_step"]
    out = []
    for i, (first, batch) in enumerate(epochs):
        end = epochs[i + 1][0] if i + 1 < len(epochs) else last
        out.append((first, batch, end - first))
    return out


def examples_to_target(record, target, batch_of_step):
    """Steps to `target` (interpolated as `steps_to_target`) converted to examples."""
    st = steps_to_target(*curve(record), target)
    if not math.isfinite(st):
        return math.inf
    whole = int(math.floor(st))
    done = sum(batch_of_step(k) for k in range(whole))
    return float(done + (st - whole) * batch_of_step(whole)) if st > whole else float(done)


def batch_record(args, decision_steps, seed):
    """The adaptive='batch' run of `seed` (cached), at --step_times, deciding every
    `decision_steps` steps (0: at epoch starts)."""
    flat = args.step_times == "flat"
    suffix = ("_flat" if flat else "") + (f"_every{decision_steps}" if decision_steps else "")
    return run(f"adabatch_max{args.max_batch}{suffix}_seed{seed}",
               batch_settings(args.max_batch, seed, decision_steps), args.out,
               record_steps=True,
               batch_step_time=(lambda batch, seconds: FLAT_SECONDS) if flat else None)


def main_batch(args):
    """`--mode=batch`: adaptive='batch' (b0 = 50 up to --max_batch) against the cached runs.

    Compares, per report seed, with the tuned fixed batch `--max_batch` (rate and length
    tuned on seed 0 by the default mode; read from `<out>/summary.json` or given) and with
    the batch-50 recipe runs, both reused from the cache (trained only if missing). Step
    times drive the controller's choices and are wall-clock: the batch sequence depends on
    the machine and its load (recorded per run as `load_average_after`).
    """
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.target is None:
        raise SystemExit("--mode=batch: give --target (e.g. 0.6, the default mode's target)")
    target = args.target
    lr, epochs = args.fixed_lr, args.fixed_epochs
    if lr is None or epochs is None:
        with open(os.path.join(args.out, "summary.json")) as f:
            prior = json.load(f)
        if prior["batch"] != args.max_batch:
            raise SystemExit("summary.json tuned another batch: give --fixed_lr, --fixed_epochs")
        lr, epochs = prior["tuned_fixed"]["lr"], prior["tuned_fixed"]["epochs"]
        if prior["target_val_accuracy"] != target:
            print(f"note: the fixed batch was tuned for target {prior['target_val_accuracy']}",
                  file=sys.stderr)
    started = time.time()
    load_before = os.getloadavg()
    small = {s: run(f"small_b{BASE_BATCH}_seed{s}", small_settings(s), args.out) for s in seeds}
    fixed = {s: run(fixed_name(args.max_batch, lr, epochs, s),
                    fixed_settings(args.max_batch, lr, epochs, s), args.out) for s in seeds}
    selection = None
    if args.select_decision_steps:
        tried = {}
        for every in (int(n) for n in args.select_decision_steps.split(",")):
            record = batch_record(args, every, args.tuning_seed)
            tried[every] = steps_to_target(*curve(record), target)
        args.decision_steps = min(tried, key=lambda every: (tried[every], -every))
        selection = {"seed": args.tuning_seed, "steps_to_target": tried,
                     "chosen": args.decision_steps}
        print(f"decision_steps on seed {args.tuning_seed}: {tried} -> {args.decision_steps}",
              file=sys.stderr, flush=True)
    batch = {s: batch_record(args, args.decision_steps, s) for s in seeds}

    per_seed = []
    for s in seeds:
        b, f, sm = batch[s], fixed[s], small[s]
        epochs_b = epoch_batches(b)
        # Each step's batch as logged (with batch_decision_steps it changes within epochs).
        step_batch = [int(r["batch_size"]) for r in b["steps"]]
        examples_b = recorded = sum(step_batch)

        def batch_of_step(k, step_batch=step_batch):
            return step_batch[min(k, len(step_batch) - 1)]

        b_steps = steps_to_target(*curve(b), target)
        f_steps = steps_to_target(*curve(f), target)
        sm_steps = steps_to_target(*curve(sm), target)
        per_seed.append({
            "seed": s,
            "batch_steps_to_target": b_steps,
            "fixed_steps_to_target": f_steps,
            "small_steps_to_target": sm_steps,
            "ratio": b_steps / f_steps if math.isfinite(f_steps) else math.nan,
            "batch_examples_to_target": examples_to_target(b, target, batch_of_step),
            "fixed_examples_to_target": f_steps * args.max_batch,
            "small_examples_to_target": sm_steps * BASE_BATCH,
            "batch_steps": b["result"]["global_step"],
            "fixed_steps": f["result"]["global_step"],
            "small_steps": sm["result"]["global_step"],
            "batch_examples": examples_b,
            "batch_examples_recorded_steps": recorded,
            "fixed_examples": f["result"]["global_step"] * args.max_batch,
            "small_examples": sm["result"]["global_step"] * BASE_BATCH,
            "batch_progress": (b.get("adascale") or {}).get("progress"),
            "batch_wall_time_result": b["result"].get("wall_time"),
            "batch_wall_seconds": b["wall_seconds"],
            "fixed_wall_seconds": f["wall_seconds"],
            "small_wall_seconds": sm["wall_seconds"],
            "batch_epoch_seconds": float(sum(h.get("seconds", 0) for h in b["history"])),
            "fixed_epoch_seconds": float(sum(h.get("seconds", 0) for h in f["history"])),
            "small_epoch_seconds": float(sum(h.get("seconds", 0) for h in sm["history"])),
            "batch_load_average_after": b.get("load_average_after"),
            "batch_val_accuracy": b["result"]["validation"]["accuracy"],
            "batch_test_accuracy": b["result"]["test"]["accuracy"],
            "fixed_test_accuracy": f["result"]["test"]["accuracy"],
            "small_test_accuracy": sm["result"]["test"]["accuracy"],
            "test_difference": b["result"]["test"]["accuracy"]
            - sm["result"]["test"]["accuracy"],
            "epoch_batches": [bs for _, bs, _ in epochs_b],
            "epoch_steps": [n for _, _, n in epochs_b],
            "decisions": b["batch_control"]["decisions"],
        })
    criteria = _criteria(per_seed, "batch_test_accuracy", args.max_ratio,
                         "adaptive batch / tuned fixed steps to target")

    def mean(key):
        return float(np.mean([p[key] for p in per_seed]))

    summary = {
        "question": "adaptive='batch' (batch 50 first, up to max_batch, b0 = 50) from the "
                    "batch-50 regime, no tuning: (a) steps to the target <= max_ratio x the "
                    "tuned fixed batch max_batch's; (b) final test accuracy within the small "
                    "batch's seed spread",
        "max_batch": args.max_batch, "base_batch": BASE_BATCH, "seeds": seeds,
        "step_times": args.step_times, "decision_steps": args.decision_steps,
        "decision_steps_selection": selection,
        "target_val_accuracy": target, "max_ratio": args.max_ratio,
        "tuned_fixed": {"batch": args.max_batch, "lr": lr, "epochs": epochs},
        "per_seed": per_seed,
        **{k: criteria[k] for k in ("ratio_geometric_mean", "ratio_ci95", "ratio_ci_method")},
        "means": {k: mean(k) for k in per_seed[0] if k.endswith(
            ("_to_target", "_steps", "_examples", "_seconds", "_accuracy"))
            and isinstance(per_seed[0][k], (int, float))},
        **{k: v for k, v in criteria.items() if not k.startswith("ratio_")},
        "wall_time_notes": "batch_wall_time_result: result.json's wall_time (adaptive-batch "
                           "only); *_wall_seconds: the whole train() call as timed by this "
                           "script (setup, evaluation included; the cached fixed and batch-50 "
                           "runs were trained in earlier invocations); *_epoch_seconds: the sum "
                           "of the history's per-epoch seconds. All on a shared 2-core CPU.",
        "wall_seconds_this_invocation": round(time.time() - started, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "load_average_before": list(load_before),
                    "load_average_after": list(os.getloadavg())},
    }
    write_summary(args, summary, markdown_batch(summary))


def _criteria_lines(s, ratio_label, difference_label, small_label, adaptive_label,
                    adaptive_accuracy):
    """The summary's two criterion lines: (a) the steps ratio, (b) the paired test accuracy."""
    ci, dci = s["ratio_ci95"], s["test_difference_ci95"]
    return [
        f"- (a) {ratio_label}: geometric mean "
        f"{s['ratio_geometric_mean']:.3f}, 95% interval "
        + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a")
        + f" ({s['ratio_ci_method']}); target <= {s['max_ratio']}: "
        + ("met" if s["criterion_a_met"] else "missed")
        + f"; per seed {s['criterion_a_each_seed']}.",
        f"- (b) test accuracy, {difference_label} (paired by seed): mean "
        f"{s['test_difference_mean']:+.4f}, 95% t-interval "
        + (f"[{dci[0]:+.4f}, {dci[1]:+.4f}]" if dci else "n/a")
        + f"; {small_label} seed spread {s['small_test_spread'][0]:.3f}-"
        f"{s['small_test_spread'][1]:.3f}; {adaptive_label} mean {adaptive_accuracy:.4f}: "
        + ("inside" if s["criterion_b_met"] else "outside")
        + f"; per seed inside: {s['criterion_b_each_seed']}.",
    ]


def markdown_batch(s):
    t = s["tuned_fixed"]
    B = s["max_batch"]
    lines = [
        f"# adaptive='batch' (50 up to {B}) vs the tuned fixed batch {B} and batch 50 "
        "(MNIST-1D)",
        "",
        (f"Target validation accuracy {s['target_val_accuracy']}. Tuned fixed batch {B}: lr "
         f"{t['lr']:g}, {t['epochs']:g} epochs (tuned on seed 0 by the default mode). "
         + ("The controller's choices use wall-clock step times (shared 2-core CPU; load "
            f"average before {s['machine']['load_average_before'][0]:.2f}, after "
            f"{s['machine']['load_average_after'][0]:.2f})."
            if s.get("step_times", "measured") == "measured" else
            "The controller's choices use pinned step times (`--step_times=flat`): every "
            "step as long whatever its batch, perfect data-parallel scaling up to the "
            "maximum batch; the training is real, the clock is not.")),
        "",
        ("| seed | steps to target: ada-batch / fixed / b50 | ratio ada / fixed | examples to "
         "target: ada-batch / fixed | total steps: ada-batch / fixed / b50 | examples: "
         "ada-batch / fixed / b50 | wall s: ada-batch (result) / fixed / b50 | test acc: "
         "ada-batch / b50 (diff) / fixed | batch per epoch |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in s["per_seed"]:
        lines.append(
            f"| {p['seed']} | {_f(p['batch_steps_to_target'])} / "
            f"{_f(p['fixed_steps_to_target'])} / {_f(p['small_steps_to_target'])} | "
            f"{p['ratio']:.3f} | {_f(p['batch_examples_to_target'], 0)} / "
            f"{_f(p['fixed_examples_to_target'], 0)} | {p['batch_steps']} / {p['fixed_steps']} "
            f"/ {p['small_steps']} | {p['batch_examples']} / {p['fixed_examples']} / "
            f"{p['small_examples']} | {p['batch_wall_seconds']:.1f} "
            f"({p['batch_wall_time_result']:.1f}) / {p['fixed_wall_seconds']:.1f} / "
            f"{p['small_wall_seconds']:.1f} | {p['batch_test_accuracy']:.3f} / "
            f"{p['small_test_accuracy']:.3f} ({p['test_difference']:+.3f}) / "
            f"{p['fixed_test_accuracy']:.3f} | {p['epoch_batches']} |")
    m = s["means"]
    lines.append(
        f"| mean | {_f(m['batch_steps_to_target'])} / {_f(m['fixed_steps_to_target'])} / "
        f"{_f(m['small_steps_to_target'])} | {s['ratio_geometric_mean']:.3f} (geometric) | "
        f"{_f(m['batch_examples_to_target'], 0)} / {_f(m['fixed_examples_to_target'], 0)} | "
        f"{m['batch_steps']:.1f} / {m['fixed_steps']:.1f} / {m['small_steps']:.1f} | "
        f"{m['batch_examples']:.0f} / {m['fixed_examples']:.0f} / {m['small_examples']:.0f} | "
        f"{m['batch_wall_seconds']:.1f} / {m['fixed_wall_seconds']:.1f} / "
        f"{m['small_wall_seconds']:.1f} | {m['batch_test_accuracy']:.3f} / "
        f"{m['small_test_accuracy']:.3f} ({s['test_difference_mean']:+.3f}) / "
        f"{m['fixed_test_accuracy']:.3f} | |")
    lines += [
        "",
        *_criteria_lines(s, f"steps to the target, adaptive batch / tuned fixed {B}",
                         "adaptive batch - batch 50", "batch 50's", "adaptive-batch",
                         m["batch_test_accuracy"]),
        f"- wall times: {s['wall_time_notes']}",
        "",
    ]
    return "\n".join(lines)


def _f(x, digits=1):
    return "not reached" if not math.isfinite(x) else f"{x:.{digits}f}"


def markdown(s):
    t = s["tuned_fixed"]
    lines = [
        f"# adaptive='lr' at batch {s['batch']} vs the tuned fixed batch (MNIST-1D)",
        "",
        (f"Target validation accuracy {s['target_val_accuracy']} ({s['target_rule']}). "
         f"Tuned fixed batch {s['batch']} (seed {s['tuning_seed']}, fewest steps to the "
         f"target): lr {t['lr']:g} for {DROP_FRACTION:g} of {t['epochs']:g} epochs, then "
         f"/ 10 ({t['epochs'] * 3200 // s['batch']:g} steps); grid lr {t['lr_grid']}, epochs "
         f"{t['epochs_grid']}, best strictly inside: {t['best_strictly_inside']}."),
        "",
        ("| seed | small b50 steps to target | adaptive steps to target | tuned fixed steps to "
         "target | ratio adaptive / fixed | adaptive steps (progress) | small test acc | "
         "adaptive test acc | difference | tuned fixed test acc |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in s["per_seed"]:
        lines.append(
            f"| {p['seed']} | {_f(p['small_steps_to_target'])} | "
            f"{_f(p['adaptive_steps_to_target'])} | {_f(p['fixed_steps_to_target'])} | "
            f"{p['ratio']:.3f} | {p['adaptive_steps']} ({p['adaptive_progress']:.1f}) | "
            f"{p['small_test_accuracy']:.3f} | {p['adaptive_test_accuracy']:.3f} | "
            f"{p['test_difference']:+.3f} | {p['fixed_test_accuracy']:.3f} |")
    m = s["mean_steps_to_target"]
    a = s["test_accuracy_mean"]
    lines += [
        (f"| mean | {_f(m['small'])} | {_f(m['adaptive'])} | {_f(m['fixed'])} | "
         f"{s['ratio_geometric_mean']:.3f} (geometric) | "
         f"{np.mean([p['adaptive_steps'] for p in s['per_seed']]):.1f} | {a['small']:.3f} | "
         f"{a['adaptive']:.3f} | {s['test_difference_mean']:+.3f} | {a['fixed']:.3f} |"),
        "",
        *_criteria_lines(s, "ratio of steps to the target, adaptive / tuned fixed",
                         "adaptive - small", "small batch's", "adaptive", a["adaptive"]),
    ]
    o = s.get("oracle_fixed")
    if o:
        oci = o["ratio_ci95"]
        lines.append(
            "- sensitivity (not a criterion): against the per-seed oracle, the fewest steps of "
            f"any rate {o['lrs']} at {o['epochs']} epochs on each report seed itself "
            "(optimistic for the fixed batch): "
            + ", ".join(f"seed {p['seed']}: lr {p['lr']:g}, {p['epochs']:g} epochs, "
                        f"{_f(p['steps_to_target'])} steps, ratio {p['ratio']:.3f}"
                        for p in o["per_seed"])
            + f"; geometric mean ratio {o['ratio_geometric_mean']:.3f}"
            + (f", 95% interval [{oci[0]:.3f}, {oci[1]:.3f}]." if oci else "."))
    lines.append("")
    return "\n".join(lines)


def figure(args, seed, adaptive, small, fixed, target):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = adaptive[seed]
    rows = rec["steps"]
    steps = [r["step"] for r in rows]
    hist = [h for h in rec["history"] if "b_simple" in h]
    scale = args.batch / BASE_BATCH
    fig, ax = plt.subplots(4, 1, figsize=(7, 10), sharex=False)
    ax[0].plot(steps, [r["gain"] for r in rows], label="gain r_t (each step)")
    ax[0].axhline(scale, color="grey", ls=":", label=f"S = {scale:g}")
    ax[0].axhline(1, color="grey", ls="--", lw=0.8, label="1")
    ax[0].set_ylabel("gain")
    ax[0].legend(fontsize=8)
    ax[1].plot(steps, [r["learning_rate"] for r in rows], label="rate applied (each step)")
    ax1b = ax[1].twinx()
    ax1b.plot(steps, [r["progress"] for r in rows], color="C2", label="progress tau_t")
    ax1b.axhline(rec["adascale"]["base_steps"], color="C2", ls=":", lw=0.8)
    ax1b.set_ylabel("progress (base steps)", color="C2")
    ax[1].set_ylabel("learning rate")
    ax[1].legend(loc="center left", fontsize=8)
    ax[2].errorbar([h["step"] for h in hist], [h["b_simple"] for h in hist],
                   yerr=[h.get("b_simple_stderr", 0) for h in hist], fmt="o-", ms=3,
                   label="B_simple (each epoch's end)")
    ax[2].axhline(args.batch, color="grey", ls=":", label=f"B = {args.batch}")
    ax[2].axhline(BASE_BATCH, color="grey", ls="--", lw=0.8, label=f"b0 = {BASE_BATCH}")
    ax[2].set_ylabel("B_simple")
    ax[2].legend(fontsize=8)
    for r, label in ((small[seed], f"small b{BASE_BATCH}"),
                     (rec, f"adaptive b{args.batch}"),
                     (fixed[seed], f"tuned fixed b{args.batch}")):
        s, v = curve(r)
        ax[3].plot(s, v, "o-", ms=3, label=label)
    ax[3].axhline(target, color="k", ls=":", lw=0.8, label=f"target {target}")
    ax[3].set_xscale("log")
    ax[3].set_ylabel("validation accuracy")
    ax[3].set_xlabel("step (log)")
    ax[3].legend(fontsize=8)
    for a in ax[:3]:
        a.set_xlabel("step")
    fig.suptitle(f"AdaScale (adaptive='lr') on MNIST-1D, batch {args.batch} from the batch-"
                 f"{BASE_BATCH} regime, seed {seed}", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure}", file=sys.stderr)


if __name__ == "__main__":
    main()
