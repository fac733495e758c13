"""Runs a generalization-gap study: every training once, in parallel worker processes.

The rows are grouped into trainings (`tfgap.study.regimes.trainings`): rows
that differ only in how BN keeps its moving statistics share one training,
which keeps their statistics side by side (`tfgap.study.moving`). Each
training and seed is one run, `tfgap.training.train(config)` in its own
`model_dir` (`<output_dir>/runs/<row slug>/seed<k>`), so a run leaves
exactly what a recipe leaves (`result.json`, `history.json`, checkpoints,
TensorBoard logs). Beside `result.json` the study writes `study.json`: the
row, the seed, why a convergence run stopped, its validation and test
accuracy with the per-example test correctness, the norm of its weights, the
measures of its minimum (rows with `Regime.measure`: Keskar's sharpness, the
scale-invariant sharpness, the Hessian's top eigenvalue) and, for every row
derived from the same training, that row's accuracies; and
`moving_statistics.npz` (the derived rows' BN statistics). A finished run
(its `result.json` and a current `study.json`) is not trained again, so an
interrupted study resumes where it stopped.

The runs are independent: they go to `workers` worker processes (default:
one per CPU core), longest first, each worker with `threads` TensorFlow
threads (default 1). Every run gets the same thread count whatever the
number of workers, and `train` reseeds everything per run, so a parallel
study writes exactly the numbers a serial one (`workers=1`) writes
(`tests/study` checks it). Every row gets the study's `seeds`, but the
ablations (ghost sizes, alternatives) the first `ablation_seeds` and the rows
that train `B_L / B_S` times longer (`+RA`) the first `long_seeds`.

After the runs, the `SB (converged)` and `LB (converged)` solutions of every
seed are interpolated (Keskar et al.'s 1-D plot), and everything is
aggregated (`tfgap.study.report`), judged (`tfgap.study.claims`) and drawn
(`tfgap.study.plots`).
"""

import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time

import keras
import numpy as np

from tfgap import _logs, data, diagnostics, schedules
from tfgap.study import claims as claims_lib
from tfgap.study import keskar, moving, plots, report
from tfgap.study.regimes import (
    ABLATION_SEEDS,
    LONG_SEEDS,
    REGIMES,
    SEEDS,
    regime_configs,
    run_dir,
    select,
    trainings,
)
from tfgap.training import (
    ConfigError,
    TrainConfig,
    build_model,
    finished_result,
    plan_steps,
    rundir,
    train,
    write_json,
)
from tfgap.training.inputs import num_examples

STUDY_RECORD = report.STUDY_RECORD
STUDY_RECORD_VERSION = 3
MOVING_STATISTICS = "moving_statistics.npz"
# The interpolation's ends: like with like first, else what was run.
INTERPOLATION_ENDS = (("SB (converged)", "LB (converged)"), ("SB", "LB (converged)"),
                      ("SB", "LB"))


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
        for split in ("validation", "test"):
            value = report.epoch_value(logs, split, "accuracy")
            if value is not None:
                self._logs[f"{split}_accuracy"] = value

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
    return plan_steps(config, num_train_examples=num_examples(config, "train")).total_steps


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


def _split(config, split, num=None):
    """A whole split (or its first `num` examples) as arrays, cached per process."""
    key = (config.dataset, config.data_dir, config.mock_data, config.mock_examples,
           config.synthetic, config.validation_examples, split, num)
    if key not in _SPLITS:
        size = num or num_examples(config, split)
        _SPLITS[key] = fixed_examples(config, split, size) if size else None
    return _SPLITS[key]


_SPLITS = {}


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def run_plan(groups, seeds, long_seeds, ablation_seeds=None):
    """`[(training, seed), ...]`: every training for its seeds, seed by seed, in table order.

    A training whose row is `long` (`+RA`) gets `long_seeds`, an ablation
    (`Regime.ablation`) `ablation_seeds` (default: `seeds`), every other one
    `seeds`; the rows derived from a training share its seeds.

    Example:

    >>> from tfgap.study.regimes import Training, study_regimes
    >>> rows = {r.name: r for r in study_regimes(large_batch_size=64, ghost_batch_size=32)}
    >>> groups = [Training(rows[n]) for n in ("SB", "LB+LR+GBN+RA", "LB+LARS")]
    >>> plan = run_plan(groups, seeds=[0, 1, 2], long_seeds=[0], ablation_seeds=[0, 1])
    >>> [(t.row.name, s) for t, s in plan]
    [('SB', 0), ('LB+LR+GBN+RA', 0), ('LB+LARS', 0), ('SB', 1), ('LB+LARS', 1), ('SB', 2)]
    """
    ablation_seeds = seeds if ablation_seeds is None else ablation_seeds
    plan = []
    for seed in seeds:
        for group in groups:
            tier = (long_seeds if group.row.long else
                    ablation_seeds if group.row.ablation else seeds)
            if seed in tier:
                plan.append((group, seed))
    return plan


def default_workers():
    """One worker process per CPU core (at least one)."""
    return max(1, os.cpu_count() or 1)


def run_study(
    base,
    *,
    output_dir,
    large_batch_size,
    ghost_batch_size,
    seeds=tuple(range(SEEDS)),
    long_seeds=None,
    ablation_seeds=None,
    workers=None,
    threads=1,
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
    started=None,
):
    """Trains every training for its seeds, measures, aggregates, judges the claims and plots.

    Args:
        base: the `SB` `TrainConfig` (see `tfgap.study.small_batch_config`);
            its `model_dir`, `seed` and `export_dir` are replaced per run.
        output_dir: where runs, `results.json`, `results.csv`, `results.md`
            and the figures go.
        large_batch_size: `B_L`.
        ghost_batch_size: `B_G` of the `+GBN` rows.
        seeds: the seeds of every row (default `0, ..., SEEDS - 1`).
        long_seeds: the seeds of the rows that train `B_L / B_S` times
            longer (`Regime.long`; default: the first `LONG_SEEDS` of `seeds`).
        ablation_seeds: the seeds of the ablations (`Regime.ablation`;
            default: the first `ABLATION_SEEDS` of `seeds`).
        workers: worker processes training runs side by side (default: one
            per CPU core). The results do not depend on it.
        threads: TensorFlow threads of each worker (intra- and inter-op);
            the numbers depend on it (float sums in another order), so it is
            the same for every run and recorded in `results.json`.
        export_dir: where the first seed's `LB+LR+GBN+RA` model is exported
            as a SavedModel (`None`: no export).
        regimes: the rows to run: `None` (default) every row of
            `tfgap.study.study_regimes`, or names (e.g. `REGIMES`, Table 1's).
        sharpness_examples: training examples (the first ones, fixed) over
            which the minima are measured; 0 skips the measures.
        sharpness_epsilon: the box size `eps` of both sharpness measures.
        sharpness_iterations: L-BFGS-B iterations of each sharpness.
        interpolation_points: alphas in [-1, 2] of the SB <-> LB
            interpolation of every seed (0 skips it; its ends are
            `SB (converged)` and `LB (converged)`, else `SB` and what was run).
        interpolation_examples: training and test examples of the
            interpolation (the first ones of each split).
        convergence_patience: epochs without a 1% loss improvement that stop
            the convergence rows (default: `base.epochs`, rounded up).
        settings: a JSON-ready dict stored in `results.json` (e.g. the command).
        stream: where progress and the tables are printed (default stdout).
        started: when the study's clock starts (a `time.time()`; default
            now); the command passes its process' start, so `wall_time` is
            the command's.

    Returns:
        The `results.json` dict: `regimes` (rows, see
        `tfgap.study.report.summarize`), `claims`, `settings` (with
        `split_sizes`), `interpolations`, `figures`, `export_dir`, `machine`
        (with the load average sampled during the study and the CPU seconds
        of this process and its workers), `wall_time`, `runs_seconds` (the
        wall time of the runs alone).
    """
    stream = stream or sys.stdout
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Expected at least one seed. Received: seeds=[]")
    long_seeds = (seeds[:LONG_SEEDS] if long_seeds is None else [int(s) for s in long_seeds])
    ablation_seeds = (seeds[:ABLATION_SEEDS] if ablation_seeds is None
                      else [int(s) for s in ablation_seeds])
    for name, tier in (("long_seeds", long_seeds), ("ablation_seeds", ablation_seeds)):
        if not tier or not set(tier) <= set(seeds):
            raise ValueError(f"Expected {name}, at least one, among seeds={seeds}. "
                             f"Received: {name}={tier}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1 or int(threads) < 1:
        raise ValueError(f"Expected workers >= 1 and threads >= 1. Received: "
                         f"workers={workers}, threads={threads}")
    patience = convergence_patience or max(1, int(np.ceil(base.epochs)))
    os.makedirs(output_dir, exist_ok=True)
    started = time.time() if started is None else float(started)
    load = _LoadSampler()
    rows = select(regimes, base=base, large_batch_size=large_batch_size,
                  ghost_batch_size=ghost_batch_size)
    configs = regime_configs(base, large_batch_size=large_batch_size,
                             ghost_batch_size=ghost_batch_size, regimes=rows)
    groups = trainings(rows, configs)
    plan = run_plan(groups, seeds, long_seeds, ablation_seeds)
    measure = dict(examples=int(sharpness_examples), epsilon=float(sharpness_epsilon),
                   iterations=int(sharpness_iterations))
    tasks = []
    for group, seed in plan:
        export = (export_dir if group.row.name == "LB+LR+GBN+RA" and seed == seeds[0]
                  else None)
        config = _run_config(configs[group.row.name], group.row, seed, output_dir, export)
        _check_same_run(config)
        tasks.append(_task(group, seed, config, configs, patience, measure))
    runs_started = time.time()
    _execute(tasks, workers, int(threads), stream)
    runs_seconds = time.time() - runs_started

    seeds_of, sources = {}, {}
    for group in groups:
        for row in group.rows:
            seeds_of[row.name] = [s for g, s in plan if g is group]
            if row is not group.row:
                sources[row.name] = group.row.name
    names = [r.name for r in rows]
    records = report.load_runs(output_dir, regimes=names, seeds=seeds_of, sources=sources)
    results = report.summarize(records, {r.name: r for r in rows})
    results["claims"] = claims_lib.evaluate(results)
    results["settings"] = dict(
        settings or {}, seeds=seeds, long_seeds=long_seeds, ablation_seeds=ablation_seeds,
        workers=workers,
        threads=int(threads), large_batch_size=large_batch_size,
        ghost_batch_size=ghost_batch_size, sharpness_examples=sharpness_examples,
        sharpness_epsilon=sharpness_epsilon, sharpness_iterations=sharpness_iterations,
        convergence_patience=patience, converged_accuracy=keskar.CONVERGED_ACCURACY,
        accuracy_margin=claims_lib.ACCURACY_MARGIN, slope_margin=claims_lib.SLOPE_MARGIN,
        alpha=claims_lib.ALPHA, base_config=base.to_dict(),
        split_sizes={split: num_examples(base, split)
                     for split in ("train", "validation", "test")})
    results["interpolations"] = _interpolations(configs, records, interpolation_points,
                                                interpolation_examples)
    results["export_dir"] = export_dir
    results["machine"] = dict(machine_description(), **load.stop(), cpu_seconds=_cpu_seconds())
    results["figures"] = plots.write_figures(
        records, results, results["interpolations"], output_dir,
        title=plots.study_title(base, seeds, long_seeds, ablation_seeds))
    results["runs_seconds"] = runs_seconds
    results["wall_time"] = time.time() - started
    report.write_results(results, output_dir)
    stream.write("\n" + report.format_table(results) + "\n")
    keskar_table = report.format_keskar_table(results)
    if keskar_table:
        stream.write("\nMeasured minima (Keskar et al.'s setting: train to >= 99% train "
                     "accuracy or a loss plateau; measured on the first "
                     f"{sharpness_examples} training examples):\n{keskar_table}\n")
    measured = [c for c in results["claims"] if not c.get("measured", "").startswith(
        "not measured")]
    if measured:
        stream.write("\nClaims (paired by seed; effects: Holm-corrected t tests; equalities: "
                     f"TOST with the stated margin; test accuracy):\n"
                     f"{report.format_claims(measured)}\n")
    if len(measured) < len(results["claims"]):
        stream.write(f"({len(results['claims']) - len(measured)} claims not measured: their "
                     "rows were not run)\n")
    stream.write(f"Study done in {results['wall_time']:.0f}s (runs {runs_seconds:.0f}s on "
                 f"{workers} worker{'s' if workers > 1 else ''}); results in "
                 f"{os.path.join(output_dir, report.RESULTS_JSON)}\n")
    stream.flush()
    return results


def _run_config(config, row, seed, output_dir, export_dir):
    # The curve rows are evaluated at the small-batch regime's epochs (their curves are
    # drawn): a stretched run (+RA) would otherwise evaluate `stretch` times as often, for
    # the same curve. The other rows are evaluated once, at the end (the trainer always
    # evaluates the last epoch); evaluating costs as much as training an LB epoch here.
    stretch = schedules.stretch_factor(config.base_batch_size, config.batch_size,
                                       config.regime_adaptation)
    every = max(1, int(round(stretch))) * config.eval_every_epochs
    if not row.curves:
        every = max(every, int(math.ceil(config.epochs * stretch)))
    # The long rows (+RA: B_L / B_S times SB's epochs at B_L) are XLA-compiled: 1.6x
    # faster there on this study's CPU machine, whereas on short runs the compile costs more
    # than it saves (docs/study.md, "parallel runs"). Like the thread count, it changes how
    # a row is computed, not what it is: sums in another order, the last bits.
    return config.replace(
        model_dir=run_dir(output_dir, row.name, seed),
        seed=seed,
        export_dir=export_dir,
        eval_every_epochs=every,
        jit_compile=config.jit_compile or row.long,
        verbose=0,
    )


def _task(group, seed, config, configs, patience, measure):
    """One run as plain data (it crosses to a worker process)."""
    derived = [dict(name=row.name, bn_momentum=configs[row.name].bn_momentum,
                    moving_update=configs[row.name].moving_update) for row in group.derived]
    title = f"{group.row.name} seed {seed}"
    if derived:
        title += f" (+ {', '.join(d['name'] for d in derived)})"
    # The examples it trains on, to send the longest runs first; a convergence run usually
    # stops long before its cap, near the small-batch regime's length.
    examples = total_steps(config) * config.batch_size
    if group.row.until_converged:
        examples /= schedules.stretch_factor(config.base_batch_size, config.batch_size,
                                             config.regime_adaptation)
    return dict(config=config.to_dict(), row=group.row.name, seed=int(seed), title=title,
                until_converged=group.row.until_converged, measure=group.row.measure,
                derived=derived, patience=int(patience), sharpness=dict(measure),
                cost=examples * (2.0 if config.sam_rho else 1.0))


def _execute(tasks, workers, threads, stream):
    """Runs `tasks` on `workers` processes, longest first; prints a line as each one ends.

    A run finished before with a current `study.json` is reused without a worker.
    """
    done, left, total = 0, [], len(tasks)
    for task in tasks:
        if _reusable(task):
            done += 1
            stream.write(f"[{done}/{total}] {task['title']}: finished before, reused "
                         f"{task['config']['model_dir']}\n")
        else:
            left.append(task)
    if not left:
        stream.flush()
        return
    order = sorted(range(len(left)), key=lambda i: -left[i]["cost"])
    stream.write(f"{len(left)} run{'s' if len(left) > 1 else ''} on {workers} worker process"
                 f"{'es' if workers > 1 else ''} ({threads} TensorFlow thread"
                 f"{'s' if threads > 1 else ''} each), longest first\n")
    stream.flush()
    tasks = left
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, max(len(tasks), 1)), mp_context=context,
            initializer=_init_worker, initargs=(threads,)) as pool:
        # The workers start while the tasks are submitted and inherit stderr and the
        # environment then. The commands keep TensorFlow quiet (`TF_CPP_MIN_LOG_LEVEL=3`,
        # `tfgap._logs`), but a worker imports TensorFlow before any code of ours runs there:
        # its stderr is /dev/null then (its errors still reach us, from `future.result()`).
        with _logs._stderr_silenced(os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3"), \
                _environment(WORKER_MALLOC):
            futures = {pool.submit(_run_task, tasks[i]): i for i in order}
        try:
            for future in concurrent.futures.as_completed(futures):
                outcome = future.result()
                done += 1
                stream.write(f"[{done}/{total}] {outcome['line']}\n")
                stream.flush()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# glibc malloc settings of the workers. By default glibc gives freed memory at the top of the
# heap back to the system and takes it again at the next step: every training step then
# page-faults its tensors' memory in anew. Measured on the 2-core machine of docs/study.md, an
# `LB` run of 144 steps made 3.3 million minor page faults and spent 10.5 s of 34 s of CPU in
# the kernel; keeping 256 MB of padding at the heap's top (and trimming only above 1 GB, with
# allocations above 32 MB still mapped apart) brings that to 0.17 million and 1.1 s, and its
# wall time from 46 s to 15 s. Only where the memory comes from changes, not a number.
WORKER_MALLOC = {"MALLOC_TOP_PAD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824",
                 "MALLOC_MMAP_THRESHOLD_": "33554432"}


@contextlib.contextmanager
def _environment(values):
    """Processes started inside the block get `values` in their environment (unless set)."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _init_worker(threads):
    import tensorflow as tf  # noqa: PLC0415

    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    tf.config.threading.set_inter_op_parallelism_threads(int(threads))


def _wanted(task):
    """What the run's `study.json` must say to be reused (the rest is measured)."""
    sharp = task["sharpness"]
    return {"regime": task["row"], "seed": task["seed"], "version": STUDY_RECORD_VERSION,
            "until_converged": task["until_converged"], "measure": task["measure"],
            "sharpness_epsilon": sharp["epsilon"], "sharpness_iterations": sharp["iterations"],
            "sharpness_examples": sharp["examples"] or None,
            "derived_rules": {d["name"]: [d["bn_momentum"], d["moving_update"]]
                              for d in task["derived"]}}


def _previous_record(config):
    path = os.path.join(config.model_dir, STUDY_RECORD)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _reusable(task):
    """Whether the run is finished with a current `study.json` (nothing to do)."""
    config = TrainConfig.from_dict(task["config"])
    return (finished_result(config) is not None
            and _is_current(_previous_record(config), _wanted(task)))


def _run_task(task):
    """Trains one run (or measures a finished one again), and its derived rows.

    Runs in a worker process; returns `{"line": ...}`, the progress line.
    """
    started = time.time()
    config = TrainConfig.from_dict(task["config"])
    record_path = os.path.join(config.model_dir, STUDY_RECORD)
    wanted = _wanted(task)
    previous = _previous_record(config)
    finished = finished_result(config)
    rules = {d["name"]: (d["bn_momentum"], d["moving_update"]) for d in task["derived"]}
    statistics, model, stopped = None, None, previous.get("stopped")
    if finished is not None and _is_current(previous, wanted):
        return {"line": f"{task['title']}: finished before, reused {config.model_dir}"}
    if finished is not None:
        statistics = _saved_statistics(config, rules)
        if statistics is not None or not rules:
            model = _restored_model(config)
    what = "measured again"
    if model is None:
        if rules and os.path.exists(config.model_dir):
            # The other rules' statistics cannot be resumed with the run: train it anew.
            shutil.rmtree(config.model_dir)
        callbacks = []
        tracker = moving.MovingStatistics(rules) if rules else None
        if tracker is not None:
            callbacks.append(tracker)
        stop = None
        if task["until_converged"]:
            stop = keskar.ConvergenceStop(patience=task["patience"])
            callbacks.append(stop)
        result = train(config, callbacks=callbacks)
        model, stopped = result.model, None if stop is None else stop.stopped
        if tracker is not None:
            statistics = tracker.statistics()
            moving.save(os.path.join(config.model_dir, MOVING_STATISTICS), statistics)
        what = f"trained in {result['wall_time']:.0f}s"
    record = dict(wanted, stopped=stopped)
    record.update(_measure(model, config, task, statistics or {}))
    write_json(record_path, record)
    accuracy = 100 * record["evaluation"]["test_accuracy"]
    return {"line": f"{task['title']}: {what}, {time.time() - started:.0f}s in all, test "
                    f"{accuracy:.1f}% (pid {os.getpid()})"}


def _evaluation(model, config):
    """Validation and test accuracy and loss, and the per-example test correctness."""
    out = {}
    for split in ("validation", "test"):
        arrays = _split(config, split)
        if arrays is None:
            out[f"{split}_accuracy"] = out[f"{split}_loss"] = None
            continue
        r = keskar.evaluate(model, *arrays, batch_size=config.global_eval_batch_size)
        out[f"{split}_accuracy"], out[f"{split}_loss"] = r["accuracy"], r["loss"]
        if split == "test":
            out["test_correct"] = report.pack_correct(r["correct"])
            out["test_examples"] = int(len(r["correct"]))
    return out


def _measure(model, config, task, statistics):
    """The fields of `study.json` measured on the trained model (and its derived rows)."""
    sharp = task["sharpness"]
    out = {"evaluation": _evaluation(model, config), "weight_norm": keskar.weight_norm(model),
           "measures": None, "derived": {}}
    if task["measure"] and sharp["examples"]:
        started = time.time()
        subset = _split(config, "train", sharp["examples"])
        out["measures"] = keskar.measure_minimum(
            model, *subset, seed=task["seed"], epsilon=sharp["epsilon"],
            iterations=sharp["iterations"])
        out["measure_seconds"] = time.time() - started
    for d in task["derived"]:
        with moving.swapped(model, statistics[d["name"]]):
            out["derived"][d["name"]] = dict(bn_momentum=d["bn_momentum"],
                                             moving_update=d["moving_update"],
                                             evaluation=_evaluation(model, config))
    return out


def _saved_statistics(config, rules):
    """The derived rows' statistics a finished run saved, or None (missing or other rules)."""
    path = os.path.join(config.model_dir, MOVING_STATISTICS)
    if not rules or not os.path.exists(path):
        return None
    saved = moving.load(path)
    return saved if set(saved) == set(rules) else None


def _is_current(previous, wanted):
    """Whether a `study.json` holds what this study would write."""
    return all(previous.get(k) == v for k, v in wanted.items()) and "evaluation" in previous


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


def _interpolations(configs, records, points, examples):
    """Keskar's 1-D interpolation between the small- and large-batch ends, for every seed."""
    ends = next(((a, b) for a, b in INTERPOLATION_ENDS if a in records and b in records), None)
    if not points or ends is None:
        return []
    small, large = ends
    seeds = [r["seed"] for r in records[small] if r["seed"] in
             {q["seed"] for q in records[large]}]
    out = []
    for seed in seeds:
        pair = [next(r for r in records[name] if r["seed"] == seed) for name in ends]
        run_configs = [TrainConfig.from_dict(r["config"]) for r in pair]
        restored = [_restored_model(c) for c in run_configs]
        if any(m is None for m in restored):
            continue
        alphas = np.linspace(-1.0, 2.0, int(points))
        entry = {"small_batch_row": small, "large_batch_row": large, "seed": seed,
                 "alphas": alphas.tolist()}
        for split in ("train", "test"):
            x, y = fixed_examples(run_configs[0], split, examples)
            r = diagnostics.interpolate(*restored, x, y, alphas=alphas, loss=_loss())
            entry[f"{split}_loss"] = r.loss.tolist()
            entry[f"{split}_accuracy"] = r.accuracy.tolist()
            entry[f"{split}_examples"] = int(len(x))
        out.append(entry)
    return out


class _LoadSampler:
    """Samples the 1-minute load average every `every` seconds until `stop()`."""

    def __init__(self, every=10.0):
        self.samples, self._done = [], threading.Event()
        self._thread = threading.Thread(target=self._run, args=(float(every),), daemon=True)
        self._thread.start()

    def _run(self, every):
        while True:
            try:
                self.samples.append(os.getloadavg()[0])
            except OSError:
                return
            if self._done.wait(every):
                return

    def stop(self):
        """`{"load_mean", "load_max"}` of the samples (None without any)."""
        self._done.set()
        self._thread.join()
        if not self.samples:
            return {"load_mean": None, "load_max": None}
        return {"load_mean": round(float(np.mean(self.samples)), 2),
                "load_max": round(float(np.max(self.samples)), 2)}


def _cpu_seconds():
    """User + system CPU seconds of this process and its finished children (the workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return round(total, 1)


def source_revision():
    """The git commit of tfgap's checkout (`"<hash>"`, `"<hash>+changes"`), or None.

    None when tfgap is not run from a git checkout (an installed wheel) or git
    is missing; `+changes` when tracked files differ from that commit.
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changed else "")


def machine_description():
    """A short description of this machine (platform, CPU count, load, TensorFlow)."""
    import tensorflow as tf  # noqa: PLC0415

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
        "tfgap_commit": source_revision(),
    }


__all__ = ["REGIMES", "RunProgress", "default_workers", "fixed_examples", "run_dir",
           "run_plan", "run_study", "total_steps"]
