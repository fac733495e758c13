"""Runs a generalization-gap study: every row, its seeds, one trainer.

Each run is `tfgap.training.train(config)` on the row's `TrainConfig`, in its
own `model_dir` (`<output_dir>/runs/<row slug>/seed<k>`), so a run leaves
exactly what a recipe leaves (`result.json`, `history.json`, checkpoints,
TensorBoard logs). Beside `result.json` the study writes `study.json`: the
row, the seed, why a convergence run stopped, and the measures of the final
weights on a fixed subset of the training data (Keskar's sharpness for every
run; for `SB`, `LB (converged)` and `LB+LR+GBN+RA` also the random-subspace
sharpness and the Hessian's top eigenvalue), taken while the trained model
is still in memory. A finished run (its `result.json` and a current
`study.json`) is not trained again, so an interrupted study resumes where it
stopped; an interrupted run resumes from its own checkpoint.

Rows of Table 1 and the convergence row are trained with every seed; the
ablations with the first `ablation_seeds`. After the runs, the `SB` and
`LB (converged)` solutions of the first seed are interpolated (Keskar et
al.'s 1-D plot), and everything is aggregated (`tfgap.study.report`),
judged (`tfgap.study.claims`) and drawn (`tfgap.study.plots`).
"""

import json
import math
import os
import platform
import sys
import time

import keras
import numpy as np

from tfgap import data, diagnostics, schedules
from tfgap.study import claims as claims_lib
from tfgap.study import keskar, plots, report
from tfgap.study.regimes import REGIMES, regime_configs, run_dir, select
from tfgap.training import (
    ConfigError,
    build_model,
    finished_result,
    plan_steps,
    rundir,
    train,
    write_json,
)

STUDY_RECORD = "study.json"
STUDY_RECORD_VERSION = 2
# Rows measured at convergence (subspace sharpness, Hessian), and the interpolation's ends.
CONVERGENCE_ROWS = ("SB", "LB (converged)", "LB+LR+GBN+RA")
INTERPOLATION_ENDS = ("SB", "LB (converged)")


class RunProgress(keras.callbacks.Callback):
    """One progress bar for a whole run, over its optimizer steps.

    On a terminal the bar is redrawn in place (at most ten times a second);
    elsewhere (a log file, a pipe) one line is printed when the run ends, so
    logs stay short even for runs of hundreds of epochs.

    Args:
        title: the run's name, printed before the bar.
        total_steps: the run's optimizer steps (at most: a convergence run
            may stop earlier).
        stream: where to print (default `sys.stdout`).
        width: characters of the bar.
    """

    def __init__(self, title, total_steps, stream=None, width=30):
        super().__init__()
        self.title = str(title)
        self.total_steps = max(int(total_steps), 1)
        self.stream = stream or sys.stdout
        self.width = int(width)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = self._last = 0.0
        self._step = 0
        self._line = ""
        self._logs = {}

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._last = 0.0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._logs.update({k: logs[k] for k in ("loss", "accuracy") if logs.get(k) is not None})
        now = time.time()
        self._step = int(logs.get("step", batch + 1))
        if self.tty and (now - self._last >= 0.1 or self._step >= self.total_steps):
            self._last = now
            self._draw(self._step, end="")

    def on_epoch_end(self, epoch, logs=None):
        self._keep_eval(logs)

    def on_train_end(self, logs=None):
        self._keep_eval(logs)
        self._draw(self._step or self.total_steps, end="\n")

    def _keep_eval(self, logs):
        for key in ("val_accuracy", "test_accuracy"):
            if logs and logs.get(key) is not None:
                self._logs[key] = logs[key]

    def _draw(self, step, end):
        done = min(step / self.total_steps, 1.0)
        filled = int(round(self.width * done))
        bar = "=" * max(filled - 1, 0) + (">" if 0 < filled < self.width else "=" * (filled > 0))
        metrics = " - ".join(f"{k} {v:.4f}" for k, v in self._logs.items())
        line = (f"{self.title} [{bar:<{self.width}}] {step}/{self.total_steps} steps - "
                f"{time.time() - self._start:.0f}s" + (f" - {metrics}" if metrics else ""))
        prefix = "\r" if self.tty else ""
        pad = " " * max(len(self._line) - len(line), 0)
        self.stream.write(prefix + line + pad + end)
        self.stream.flush()
        self._line = line


def total_steps(config):
    """The optimizer steps `train(config)` will take (`tfgap.training.plan_steps`)."""
    kwargs = dict(mock_data=config.mock_data, mock_examples=config.mock_examples,
                  validation_examples=config.validation_examples)
    plan = plan_steps(
        config,
        num_train_examples=data.num_examples(config.dataset, "train", **kwargs),
    )
    return plan.total_steps


def fixed_examples(config, split, num):
    """The first `num` examples of a split of `config`'s data (`tfgap.data.fixed_examples`).

    The same examples for every run of a study: the data on which sharpness
    and the interpolation are measured (evaluation preprocessing, no shuffle).
    `"train"` is the run's training split (without its validation examples).
    """
    return data.fixed_examples(
        config.dataset, split, num, data_dir=config.data_dir, mock_data=config.mock_data,
        mock_examples=config.mock_examples, synthetic=config.synthetic,
        validation_examples=config.validation_examples)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def run_plan(rows, seeds, ablation_seeds):
    """`[(row, seed), ...]` in training order: seed by seed, rows in table order.

    Rows of Table 1 and the convergence row get every seed; the others the
    `ablation_seeds`.

    Example:

    >>> from tfgap.study.regimes import study_regimes
    >>> rows = [r for r in study_regimes(large_batch_size=64, ghost_batch_size=32)
    ...         if r.name in ("SB", "LB+GBN")]
    >>> [(r.name, s) for r, s in run_plan(rows, seeds=[0, 1], ablation_seeds=[0])]
    [('SB', 0), ('LB+GBN', 0), ('SB', 1)]
    """
    plan = []
    for seed in seeds:
        for row in rows:
            if row.full_seeds or seed in ablation_seeds:
                plan.append((row, seed))
    return plan


def run_study(
    base,
    *,
    output_dir,
    large_batch_size,
    ghost_batch_size,
    seeds=(0, 1, 2),
    ablation_seeds=None,
    export_dir=None,
    regimes=None,
    sharpness_examples=1000,
    sharpness_epsilon=1e-3,
    sharpness_iterations=10,
    interpolation_points=25,
    interpolation_examples=1000,
    convergence_patience=None,
    settings=None,
    stream=None,
):
    """Trains every row for its seeds, measures, aggregates, judges the claims and plots.

    Args:
        base: the `SB` `TrainConfig` (see `tfgap.study.small_batch_config`);
            its `model_dir`, `seed` and `export_dir` are replaced per run.
        output_dir: where runs, `results.json`, `results.csv`, `results.md`
            and the figures go.
        large_batch_size: `B_L`.
        ghost_batch_size: `B_G` of the `+GBN` rows.
        seeds: the seeds of Table 1's rows and of `LB (converged)`.
        ablation_seeds: the seeds of the ablation rows (default: the first
            two of `seeds`).
        export_dir: where the first seed's `LB+LR+GBN+RA` model is exported
            as a SavedModel (`None`: no export).
        regimes: the rows to run: `None` (default) every row of
            `tfgap.study.study_regimes`, or names (e.g. `REGIMES`, Table 1's).
        sharpness_examples: training examples (the first ones, fixed) over
            which the sharpness and the Hessian are measured; 0 skips them.
        sharpness_epsilon: the box size `eps` of the sharpness.
        sharpness_iterations: L-BFGS-B iterations of the sharpness.
        interpolation_points: alphas in [-1, 2] of the SB <-> LB
            interpolation (0 skips it; it needs `SB` and `LB (converged)`,
            or `LB` without it).
        interpolation_examples: training and test examples of the
            interpolation (the first ones of each split).
        convergence_patience: epochs without a 1% loss improvement that stop
            `LB (converged)` (default: `base.epochs`, rounded up).
        settings: a JSON-ready dict stored in `results.json` (e.g. the command).
        stream: where progress and the tables are printed (default stdout).

    Returns:
        The `results.json` dict: `regimes` (rows, see
        `tfgap.study.report.summarize`), `claims`, `settings`,
        `interpolation`, `figures`, `export_dir`, `machine`, `wall_time`.
    """
    stream = stream or sys.stdout
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Expected at least one seed. Received: seeds=[]")
    ablation_seeds = seeds[:2] if ablation_seeds is None else [int(s) for s in ablation_seeds]
    if not ablation_seeds:
        raise ValueError("Expected at least one ablation seed. Received: ablation_seeds=[]")
    patience = convergence_patience or max(1, int(np.ceil(base.epochs)))
    os.makedirs(output_dir, exist_ok=True)
    started = time.time()
    rows = select(regimes, base=base, large_batch_size=large_batch_size,
                  ghost_batch_size=ghost_batch_size)
    configs = regime_configs(base, large_batch_size=large_batch_size,
                             ghost_batch_size=ghost_batch_size, regimes=rows)
    subset = None
    if sharpness_examples:
        subset = fixed_examples(base, "train", sharpness_examples)
    plan = run_plan(rows, seeds, ablation_seeds)
    endpoints = {}  # (regime, seed) -> trained weights, for the interpolation
    for index, (row, seed) in enumerate(plan, start=1):
        export = export_dir if (row.name == "LB+LR+GBN+RA" and seed == seeds[0]) else None
        config = _run_config(configs[row.name], row, seed, output_dir, export)
        title = f"[{index}/{len(plan)}] {row.name} seed {seed}"
        endpoint = seed == seeds[0] and row.name in (*INTERPOLATION_ENDS, "LB")
        weights = _train_one(
            config, row, seed, title, stream=stream, subset=subset,
            epsilon=sharpness_epsilon, iterations=sharpness_iterations,
            full=row.name in CONVERGENCE_ROWS, patience=patience, keep_weights=endpoint)
        if endpoint:
            endpoints[row.name] = (config, weights)

    interpolation = None
    large_end = "LB (converged)" if "LB (converged)" in endpoints else "LB"
    if interpolation_points and "SB" in endpoints and large_end in endpoints:
        interpolation = _interpolate(endpoints["SB"], endpoints[large_end],
                                     interpolation_points, interpolation_examples)
        interpolation["large_batch_row"] = large_end
        interpolation["seed"] = seeds[0]
    seeds_of = {row.name: [s for r, s in plan if r is row] for row in rows}
    records = report.load_runs(output_dir, regimes=[r.name for r in rows], seeds=seeds_of)
    results = report.summarize(records, {r.name: r for r in rows})
    results["claims"] = claims_lib.evaluate(results)
    results["settings"] = dict(
        settings or {}, seeds=seeds, ablation_seeds=ablation_seeds,
        large_batch_size=large_batch_size, ghost_batch_size=ghost_batch_size,
        sharpness_examples=sharpness_examples, sharpness_epsilon=sharpness_epsilon,
        sharpness_iterations=sharpness_iterations, convergence_patience=patience,
        converged_accuracy=keskar.CONVERGED_ACCURACY, base_config=base.to_dict())
    results["interpolation"] = interpolation
    results["export_dir"] = export_dir
    results["machine"] = machine_description()
    results["figures"] = plots.write_figures(
        records, results, interpolation, output_dir,
        title=plots.study_title(base, seeds, ablation_seeds))
    results["wall_time"] = time.time() - started
    report.write_results(results, output_dir)
    stream.write("\n" + report.format_table(results) + "\n")
    keskar_table = report.format_keskar_table(results)
    if keskar_table:
        stream.write("\nAt convergence (Keskar et al.: train to >= 99% train accuracy or a "
                     "loss plateau; sharpness on the first "
                     f"{sharpness_examples} training examples):\n{keskar_table}\n")
    measured = [c for c in results["claims"] if not c["measured"].startswith("not measured")]
    if measured:
        stream.write("\nClaims (held: the difference exceeds the spread over seeds; test "
                     f"accuracy):\n{report.format_claims(measured)}\n")
    if len(measured) < len(results["claims"]):
        stream.write(f"({len(results['claims']) - len(measured)} claims not measured: their "
                     "rows were not run)\n")
    stream.write(f"Study done in {results['wall_time']:.0f}s; results in "
                 f"{os.path.join(output_dir, report.RESULTS_JSON)}\n")
    stream.flush()
    return results


def _run_config(config, row, seed, output_dir, export_dir):
    # Table 1's rows are evaluated at the small-batch regime's epochs (their curves are
    # drawn): a stretched run (+RA) would otherwise evaluate `stretch` times as often, for
    # the same curve. The ablations are evaluated once, at the end (the trainer always
    # evaluates the last epoch); evaluating costs as much as training an LB epoch here.
    stretch = schedules.stretch_factor(config.base_batch_size, config.batch_size,
                                       config.regime_adaptation)
    every = max(1, int(round(stretch))) * config.eval_every_epochs
    if not row.full_seeds:
        every = max(every, int(math.ceil(config.epochs * stretch)))
    return config.replace(
        model_dir=run_dir(output_dir, row.name, seed),
        seed=seed,
        export_dir=export_dir,
        eval_every_epochs=every,
        verbose=0,
    )


def _train_one(config, row, seed, title, *, stream, subset, epsilon, iterations, full,
               patience, keep_weights):
    """Trains one run (or reuses a finished one) and measures it.

    Returns its final weights (with `keep_weights`; else None).
    """
    record_path = os.path.join(config.model_dir, STUDY_RECORD)
    _check_same_run(config)
    record = {"regime": row.name, "seed": seed, "version": STUDY_RECORD_VERSION,
              "until_converged": row.until_converged, "stopped": None,
              "sharpness_epsilon": epsilon, "sharpness_iterations": iterations,
              "sharpness_examples": None if subset is None else int(len(subset[0]))}
    finished = finished_result(config)
    if finished is not None:
        previous = {}
        if os.path.exists(record_path):
            with open(record_path) as f:
                previous = json.load(f)
        if _is_current(previous, record):
            stream.write(f"{title}: finished before, reusing {config.model_dir}\n")
            model = _restored_model(config) if keep_weights else None
            return None if model is None else model.get_weights()
        model = _restored_model(config)
        record["stopped"] = previous.get("stopped")
        stream.write(f"{title}: finished before, measuring it again\n")
    else:
        callbacks = [RunProgress(title, total_steps(config), stream=stream)]
        stop = None
        if row.until_converged:
            stop = keskar.ConvergenceStop(patience=patience)
            callbacks.append(stop)
        model = train(config, callbacks=callbacks, stream=stream).model
        record["stopped"] = None if stop is None else stop.stopped
    if subset is not None and model is not None:
        started = time.time()
        record["measures"] = keskar.measure_minimum(
            model, *subset, seed=seed, epsilon=epsilon, iterations=iterations, full=full)
        record["measure_seconds"] = time.time() - started
        record["sharpness"] = record["measures"]["sharpness"]
    write_json(record_path, record)
    if model is None or not keep_weights:
        return None
    return [np.array(w) for w in model.get_weights()]


def _is_current(previous, wanted):
    """Whether a `study.json` holds the measures this study would take."""
    keys = ("version", "sharpness_epsilon", "sharpness_iterations", "sharpness_examples")
    if any(previous.get(k) != wanted.get(k) for k in keys):
        return False
    return wanted["sharpness_examples"] is None or "measures" in previous


def _check_same_run(config):
    """Refuses to resume a run directory that holds a run of another config."""
    started = rundir.started_config(config.model_dir)
    changed = started and rundir.differences(started[0], config)
    if changed:
        raise ConfigError(
            f"Expected {config.model_dir} to hold a run of the same settings (it would be "
            f"resumed) or nothing. Received settings that differ in {sorted(changed)}; use a "
            "new --output_dir (or delete the old one)."
        )


def _restored_model(config):
    """The final model of a finished run, from its newest checkpoint (None without one)."""
    model = _fresh_model(config)
    return model if rundir.restore_model(config.model_dir, model) else None


def _fresh_model(config):
    # No ghost batches: the network is measured in inference-mode passes of any size.
    return build_model(config.replace(ghost_batch_size=0))


def _interpolate(small_end, large_end, points, examples):
    (sb_config, sb_weights), (_, lb_weights) = small_end, large_end
    if sb_weights is None or lb_weights is None:
        return None
    model_sb, model_lb = _fresh_model(sb_config), _fresh_model(sb_config)
    model_sb.set_weights(sb_weights)
    model_lb.set_weights(lb_weights)
    alphas = np.linspace(-1.0, 2.0, int(points))
    out = {"alphas": alphas.tolist()}
    for split in ("train", "test"):
        x, y = fixed_examples(sb_config, split, examples)
        r = diagnostics.interpolate(model_sb, model_lb, x, y, alphas=alphas, loss=_loss())
        out[f"{split}_loss"] = r.loss.tolist()
        out[f"{split}_accuracy"] = r.accuracy.tolist()
        out[f"{split}_examples"] = int(len(x))
    return out


def machine_description():
    """A short description of this machine (platform, CPU count, load, TensorFlow)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "gpus": len(gpus),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


__all__ = ["REGIMES", "RunProgress", "fixed_examples", "run_dir", "run_plan", "run_study",
           "total_steps"]
