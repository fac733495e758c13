"""Runs a generalization-gap study: every regime, every seed, one trainer.

Each run is `tfgap.training.train(config)` on the regime's `TrainConfig`, in
its own `model_dir` (`<output_dir>/runs/<regime slug>/seed<k>`), so a run
leaves exactly what a recipe leaves (`result.json`, `history.json`,
checkpoints, TensorBoard logs). Beside `result.json` the study writes
`study.json`: the regime, the seed and Keskar's sharpness of the final
weights, measured while the trained model is still in memory. A finished run
(its `result.json` and `study.json` both present) is not trained again, so an
interrupted study resumes where it stopped; an interrupted run resumes from
its own checkpoint.

After the runs, the small-batch and large-batch solutions of the first seed
are interpolated (Keskar et al.'s 1-D plot) and everything is aggregated
(`tfgap.study.report`) and drawn (`tfgap.study.plots`).
"""

import json
import os
import platform
import sys
import time

import keras
import numpy as np

from tfgap import data, diagnostics, models, schedules
from tfgap.study import plots, report
from tfgap.study.regimes import REGIMES, regime_configs, slug
from tfgap.training import ConfigError, plan_steps, train

STUDY_RECORD = "study.json"


class _KeepModel(keras.callbacks.Callback):
    """Keeps the trainer's model (the trainer hands it to `set_model`)."""

    def __init__(self):
        super().__init__()
        self.trained = None

    def set_model(self, model):
        super().set_model(model)
        self.trained = model


class RunProgress(keras.callbacks.Callback):
    """One progress bar for a whole run, over its optimizer steps.

    On a terminal the bar is redrawn in place (at most ten times a second);
    elsewhere (a log file, a pipe) one line is printed when the run ends, so
    logs stay short even for runs of hundreds of epochs.

    Args:
        title: the run's name, printed before the bar.
        total_steps: the run's optimizer steps.
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
        self._line = ""
        self._logs = {}

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._last = 0.0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._logs.update({k: logs[k] for k in ("loss", "accuracy") if logs.get(k) is not None})
        now = time.time()
        step = int(logs.get("step", batch + 1))
        if self.tty and (now - self._last >= 0.1 or step >= self.total_steps):
            self._last = now
            self._draw(step, end="")

    def on_epoch_end(self, epoch, logs=None):
        self._keep_eval(logs)

    def on_train_end(self, logs=None):
        self._keep_eval(logs)
        self._draw(self.total_steps, end="\n")

    def _keep_eval(self, logs):
        for key in ("validation_accuracy", "test_accuracy"):
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


def run_dir(output_dir, regime, seed):
    """The `model_dir` of one run: `<output_dir>/runs/<slug>/seed<seed>`."""
    return os.path.join(output_dir, "runs", slug(regime), f"seed{int(seed)}")


def total_steps(config):
    """The optimizer steps `train(config)` will take (`tfgap.training.plan_steps`)."""
    kwargs = dict(mock_data=config.mock_data, mock_examples=config.mock_examples,
                  validation_examples=config.validation_examples)
    plan = plan_steps(
        config,
        num_train_examples=data.num_examples(config.dataset, "train", **kwargs),
        num_eval_examples=data.num_examples(config.dataset, "test", **kwargs),
    )
    return plan.total_steps


def fixed_examples(config, split, num):
    """The first `num` examples of a split, in file order, as NumPy arrays.

    The same examples for every run of a study: the data on which sharpness
    and the interpolation are measured (evaluation preprocessing, no shuffle).
    `"train"` is the run's training split (without its validation examples).
    """
    ds = data.build_dataset(
        config.dataset, split, batch_size=min(int(num), 1024), training=False, shuffle=False,
        data_dir=config.data_dir, mock_data=config.mock_data,
        mock_examples=config.mock_examples, synthetic=config.synthetic, seed=0,
        validation_examples=config.validation_examples,
    )
    xs, ys, have = [], [], 0
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        have += len(ys[-1])
        if have >= num:
            break
    return np.concatenate(xs)[:num], np.concatenate(ys)[:num]


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def run_study(
    base,
    *,
    output_dir,
    large_batch_size,
    ghost_batch_size,
    seeds=(0, 1, 2),
    export_dir=None,
    regimes=REGIMES,
    sharpness_examples=1000,
    sharpness_epsilon=1e-3,
    sharpness_iterations=10,
    interpolation_points=25,
    interpolation_examples=1000,
    settings=None,
    stream=None,
):
    """Trains every regime for every seed, measures, aggregates and plots.

    Args:
        base: the `SB` `TrainConfig` (see `tfgap.study.small_batch_config`);
            its `model_dir`, `seed` and `export_dir` are replaced per run.
        output_dir: where runs, `results.json`, `results.csv` and the
            figures go.
        large_batch_size: `B_L`.
        ghost_batch_size: `B_G` of the `+GBN` regimes.
        seeds: the seeds; each regime is trained once per seed.
        export_dir: where the first seed's `LB+LR+GBN+RA` model is exported
            as a SavedModel (`None`: no export).
        regimes: the regimes to run (default: all five, in Table 1's order).
        sharpness_examples: training examples (the first ones, fixed) over
            which Keskar's sharpness is measured; 0 skips sharpness.
        sharpness_epsilon: the box size `eps` of the sharpness.
        sharpness_iterations: L-BFGS-B iterations of the sharpness.
        interpolation_points: alphas in [-1, 2] of the SB <-> LB
            interpolation (0 skips it; it needs `SB` and `LB`).
        interpolation_examples: training and test examples of the
            interpolation (the first ones of each split).
        settings: a JSON-ready dict stored in `results.json` (e.g. the command).
        stream: where progress and the table are printed (default stdout).

    Returns:
        The `results.json` dict (see `tfgap.study.report.summarize`).
    """
    stream = stream or sys.stdout
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Expected at least one seed. Received: seeds=[]")
    os.makedirs(output_dir, exist_ok=True)
    started = time.time()
    configs = regime_configs(base, large_batch_size=large_batch_size,
                             ghost_batch_size=ghost_batch_size, regimes=regimes)
    sharp_x = sharp_y = None
    if sharpness_examples:
        sharp_x, sharp_y = fixed_examples(base, "train", sharpness_examples)
    endpoints = {}  # (regime, seed) -> trained weights, for the interpolation
    runs = len(configs) * len(seeds)
    index = 0
    for seed in seeds:
        for name, config in configs.items():
            index += 1
            config = _run_config(config, name, seed, output_dir,
                                 export_dir if (name == "LB+LR+GBN+RA" and seed == seeds[0])
                                 else None)
            title = f"[{index}/{runs}] {name} seed {seed}"
            weights = _train_one(config, name, seed, title, stream=stream, sharp_x=sharp_x,
                                 sharp_y=sharp_y, epsilon=sharpness_epsilon,
                                 iterations=sharpness_iterations)
            if seed == seeds[0] and name in ("SB", "LB"):
                endpoints[name] = (config, weights)

    interpolation = None
    if interpolation_points and "SB" in endpoints and "LB" in endpoints:
        interpolation = _interpolate(endpoints, interpolation_points, interpolation_examples)
    runs_records = report.load_runs(output_dir, regimes=list(configs), seeds=seeds)
    results = report.summarize(runs_records)
    results["settings"] = dict(settings or {}, seeds=seeds, large_batch_size=large_batch_size,
                               ghost_batch_size=ghost_batch_size,
                               sharpness_examples=sharpness_examples,
                               sharpness_epsilon=sharpness_epsilon,
                               sharpness_iterations=sharpness_iterations,
                               base_config=base.to_dict())
    results["interpolation"] = interpolation
    results["export_dir"] = export_dir
    results["machine"] = machine_description()
    results["figures"] = plots.write_figures(runs_records, interpolation, output_dir)
    results["wall_time"] = time.time() - started
    report.write_results(results, output_dir)
    stream.write("\n" + report.format_table(results) + "\n")
    stream.write(f"Study done in {results['wall_time']:.0f}s; results in "
                 f"{os.path.join(output_dir, report.RESULTS_JSON)}\n")
    stream.flush()
    return results


def _run_config(config, name, seed, output_dir, export_dir):
    # Evaluate at the small-batch regime's epochs: a stretched run (+RA) would
    # otherwise evaluate `stretch` times as often, for the same curve.
    stretch = schedules.stretch_factor(config.base_batch_size, config.batch_size,
                                       config.regime_adaptation)
    return config.replace(
        model_dir=run_dir(output_dir, name, seed),
        seed=seed,
        export_dir=export_dir,
        eval_every_epochs=max(1, int(round(stretch))) * config.eval_every_epochs,
        verbose=0,
    )


def _train_one(config, name, seed, title, *, stream, sharp_x, sharp_y, epsilon, iterations):
    """Trains one run (or reuses a finished one); returns its final weights or None."""
    record_path = os.path.join(config.model_dir, STUDY_RECORD)
    result_path = os.path.join(config.model_dir, "result.json")
    _check_same_run(config)
    if os.path.exists(record_path) and os.path.exists(result_path):
        with open(result_path) as f:
            finished = json.load(f)
        if finished.get("status") == "completed" and finished.get("config") == config.to_dict():
            stream.write(f"{title}: finished before, reusing {config.model_dir}\n")
            return _restored_weights(config)
    keep = _KeepModel()
    progress = RunProgress(title, total_steps(config), stream=stream)
    train(config, callbacks=[keep, progress], stream=stream)
    model = keep.trained
    sharp = None
    if sharp_x is not None:
        sharp = diagnostics.sharpness(model, sharp_x, sharp_y, epsilon=epsilon,
                                      max_iterations=iterations, seed=seed, loss=_loss())
    record = {"regime": name, "seed": seed, "sharpness": sharp, "sharpness_epsilon": epsilon,
              "sharpness_examples": None if sharp_x is None else int(len(sharp_x)),
              "sharpness_iterations": iterations}
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return [np.array(w) for w in model.get_weights()]


def _check_same_run(config):
    """Refuses to resume a run directory that holds a run of another config."""
    path = os.path.join(config.model_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f)
    wanted = json.loads(json.dumps(config.to_dict()))
    if previous != wanted:
        changed = sorted(k for k in set(previous) | set(wanted)
                         if previous.get(k) != wanted.get(k))
        raise ConfigError(
            f"Expected {config.model_dir} to hold a run of the same settings (it would be "
            f"resumed) or nothing. Received settings that differ in {changed}; use a new "
            "--output_dir (or delete the old one)."
        )


def _restored_weights(config):
    """The final weights of a finished run, from its newest checkpoint."""
    import tensorflow as tf

    model = _fresh_model(config)
    ckpt = tf.train.Checkpoint(model=model)
    latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, "checkpoints"))
    if latest is None:
        return None
    ckpt.read(latest).expect_partial()
    return model.get_weights()


def _fresh_model(config):
    spec = data.get_spec(config.dataset)
    return models.build_model(
        config.model, num_classes=spec.num_classes, input_shape=spec.input_shape,
        ghost_batch_size=0, moving_update=config.moving_update,
        weight_decay=config.weight_decay, bn_momentum=config.bn_momentum, seed=config.seed,
        **config.model_options,
    )


def _interpolate(endpoints, points, examples):
    (sb_config, sb_weights), (_, lb_weights) = endpoints["SB"], endpoints["LB"]
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
    """A short description of this machine (platform, CPU count, TensorFlow)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": len(gpus),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
