"""`python -m tfgap.recipes.advise`: the batch size to train at, from a short measurement.

Trains the small-batch regime you trust for a short while (by default its
first constant-rate phase, up to the first learning-rate drop, at most
`--max_measure_steps` steps) with the trainer's `noise_statistics`: McCandlish
et al.'s gradient noise scale `B_simple` (with its standard error) from the
training gradients themselves, moving averages over about the run's second
half. On the trained model it then measures `B_noise` and `eps_max`
(`tfgap.advisor.measure_noise_scales`: training-mode gradients and
Hessian-vector products on independent batches of training examples), reported
beside it, and predicts from `B_crit = B_simple` (the one of the two that came
closer to the measured critical batch in `benchmarks/advisor_validation.py`),
for every candidate batch (doublings of the small batch up to
`--max_batch_size`), the steps and examples relative to the fewest, the
relative wall time, the learning rate (by default the trusted rate times
AdaScale's gain from `B_simple`, beside `eps_opt(B)` and the sqrt and linear
rules; with warm-up), the
regime-adapted steps, the ghost batch and the remedies. It prints the table
and one recommendation (the candidate closest to `B_crit`), and writes into
`--output_dir` `advice.json` (`tfgap.advisor.Advice`), `advice.flags` (the
flagfile of the recipe that runs the recommendation: `python -m
tfgap.recipes.<recipe> --flagfile=advice.flags`) and `train_config.json`
(the same run as a `tfgap.training.TrainConfig`).

Default: `--recipe=mnist1d`, the study's MNIST-1D MLP and its small-batch
regime (a 3 x 128 BN MLP at batch 50, generated data; `docs/study.md`).
`--recipe=NAME` advises for another recipe, with that recipe's flags (dataset,
`--model`, and the small-batch regime: `--batch_size`, `--lr_values`,
`--epochs`, ...).

`--model_fn=module:function` advises for your own compiled Keras model
instead: the function returns `(compiled_model, x, y)` or `(compiled_model,
dataset)`, and `tfgap.advisor.advise_model` measures it (`B_simple` along a
short `model.fit`, `B_noise` and `eps_max` at its end) and writes
`advice.json`; the printed lines say what `model.fit` needs.

Example:

    python -m tfgap.recipes.advise                                 # MNIST-1D, under a minute
    PYTHONPATH=. python -m tfgap.recipes.advise --model_fn=my_project.models:build \\
        --batch_size=32 --epochs=20 --max_batch_size=4096
    python -m tfgap.recipes.advise --recipe=cifar10 --model=c1 --max_batch_size=8192 \\
        --data_dir=~/tensorflow_datasets
"""

import dataclasses
import json
import os
import shlex
import sys
import time

from absl import flags

from tfgap.recipes import cli
from tfgap.recipes import recipe_flags
from tfgap.recipes.defaults import available_recipes, recipe_defaults

PROG = "python -m tfgap.recipes.advise"
ADVICE_FILE = "advice.json"
FLAGS_FILE = "advice.flags"
CONFIG_FILE = "train_config.json"
_ADVICE_FLAGS = ("recipe", "model_fn", "output_dir", "max_batch_size", "num_replicas",
                 "max_per_replica_batch_size", "measure_fraction", "measure_steps",
                 "max_measure_steps", "noise_examples", "noise_draws", "scaling",
                 "warmup_fraction", "time_steps")
DEFAULT_RECIPE = "mnist1d"  # the study's MNIST-1D MLP regime: a measurement in under a minute


def define(fv, argv):
    """The advisor's flags (group "advice") and the trusted regime's (the recipe's flags)."""
    recipe = recipe_flags.recipe_from_argv(argv) or DEFAULT_RECIPE
    recipe_flags.define_flags(recipe_defaults(recipe), fv)
    fv["batch_size"].help = ("The small batch of the regime you trust (the measurement runs "
                             "at it; all replicas together).")
    f = flags
    f.DEFINE_enum("recipe", DEFAULT_RECIPE, available_recipes(), "Advise for this recipe, "
                  "with its flags (mnist1d: the study's MNIST-1D MLP).", flag_values=fv)
    f.DEFINE_string("model_fn", None, "Advise for your own model: 'module:function', a "
                    "function of no arguments returning (compiled_model, x, y) or "
                    "(compiled_model, dataset) (a batched tf.data.Dataset of (x, y) at "
                    "--batch_size); the module must be importable (PYTHONPATH). Uses "
                    "--batch_size, --epochs (how long you would train at it), --max_batch_size "
                    "and --measure_steps (0: tfgap.advisor.user_model.measurement_steps).",
                    flag_values=fv)
    f.DEFINE_string("output_dir", None, "Where advice.json, advice.flags and "
                    "train_config.json go (default: runs/advise/<dataset>_<model>_b<batch>).",
                    flag_values=fv)
    # The trainer's --max_batch_size (adaptive='batch') means the advisor's largest candidate
    # here; the trusted regime is a fixed-batch run (trusted_config leaves it out).
    fv["max_batch_size"].help = ("Largest global batch considered (0: --num_replicas x "
                                 "--max_per_replica_batch_size).")
    f.DEFINE_integer("num_replicas", 1, "Devices the advised global batch is split over.",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_integer("max_per_replica_batch_size", 4096, "Largest batch one device's memory "
                     "holds.", lower_bound=1, flag_values=fv)
    f.DEFINE_float("measure_fraction", 1.0, "Length of the measurement run as a fraction "
                   "of the regime's first constant-rate phase (up to its first learning-rate "
                   "drop) at the small batch.", lower_bound=0.0, upper_bound=1.0,
                   flag_values=fv)
    f.DEFINE_integer("measure_steps", 0, "Length of the measurement run in steps (0: "
                     "--measure_fraction of the first phase, at most --max_measure_steps).",
                     lower_bound=0, flag_values=fv)
    f.DEFINE_integer("max_measure_steps", 2000, "Cap of the default measurement length.",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_integer("noise_examples", 4096, "Training examples (the first ones, evaluation "
                     "preprocessing) that the B_noise and eps_max draws sample from, at most "
                     "the training split.", lower_bound=1, flag_values=fv)
    f.DEFINE_integer("noise_draws", 32, "Independent draws of the B_noise and eps_max "
                     "measurement on the trained model (each: 4 gradients and 4 Hessian-vector "
                     "products at the doubling of --batch_size nearest B_simple).",
                     lower_bound=2, flag_values=fv)
    f.DEFINE_enum("scaling", "gain", ["gain", "eps_opt", "sqrt", "linear"], "Learning-rate "
                  "rule of the recommended run: gain (the trusted rate times AdaScale's gain "
                  "(1 + B_simple / B_small) / (1 + B_simple / B)), eps_opt (from B_noise and "
                  "eps_max), sqrt or linear; gain and eps_opt fall back to sqrt for an "
                  "--optimizer other than sgd. The table shows every rule.", flag_values=fv)
    f.DEFINE_float("warmup_fraction", 0.05, "Warm-up as a fraction of the predicted steps "
                   "(0: none).", lower_bound=0.0, upper_bound=0.99, flag_values=fv)
    f.DEFINE_boolean("time_steps", False, "Time one training step at each candidate's "
                     "per-replica batch on this device, for the wall-time column (default: "
                     "every step costs the same, as with perfect data parallelism).",
                     flag_values=fv)
    cli.set_group(fv, "advice", *_ADVICE_FLAGS)


def trusted_config(fv):
    """The small-batch regime the flags describe, as a `TrainConfig` (`UsageError` if unusable)."""
    recipe = fv.recipe
    defaults = recipe_defaults(recipe)
    recipe_flags.apply_network_defaults(fv, recipe)
    if not fv["base_batch_size"].present:
        fv.base_batch_size = fv.batch_size  # the regime's rates are at the small batch
    if fv.mock_data and not fv["validation_examples"].present:
        fv.validation_examples = None  # the mock split's own default hold-out
    config = recipe_flags.config_from_flags(fv, defaults, overrides={"max_batch_size": 0})
    if config.base_batch_size != config.batch_size:
        raise cli.UsageError(
            "Expected --base_batch_size equal to --batch_size: the advisor measures the regime "
            "you trust at its own small batch. Received: --batch_size="
            f"{config.batch_size}, --base_batch_size={config.base_batch_size}")
    if config.regime_adaptation is not False:
        raise cli.UsageError(
            "Expected --regime_adaptation=false for the small-batch regime (the advisor "
            f"computes it). Received: --regime_adaptation={config.regime_adaptation}")
    return config


def load_model_fn(reference):
    """`(model, x, y)` from `--model_fn='module:function'` (`UsageError` if unusable)."""
    import importlib  # noqa: PLC0415

    module_name, _, function_name = (reference or "").partition(":")
    if not module_name or not function_name.isidentifier():
        raise cli.UsageError(f"Expected --model_fn as 'module:function'. Received: "
                             f"{reference!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise cli.UsageError(f"Expected --model_fn's module {module_name!r} to be importable "
                             f"(on PYTHONPATH). Received: {reference!r} ({e})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise cli.UsageError(f"Expected a function {function_name!r} in module {module_name!r}."
                             f" Received: --model_fn={reference!r}")
    result = function()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise cli.UsageError(
            f"Expected --model_fn={reference!r} to return (compiled_model, x, y) or "
            f"(compiled_model, dataset). Received a {type(result).__name__}"
            + (f" of {len(result)} items." if isinstance(result, tuple) else "."))
    return result if len(result) == 3 else (result[0], result[1], None)


def run_model_fn(fv):
    """`--model_fn`: `tfgap.advisor.advise_model` on the user's model; prints, writes advice.json."""
    from tfgap import advisor  # noqa: PLC0415

    started = time.time()
    model, x, y = load_model_fn(fv.model_fn)
    max_batch = fv.max_batch_size or fv.num_replicas * fv.max_per_replica_batch_size
    print(f"Measuring B_simple and B_noise of {fv.model_fn} at batch {fv.batch_size}...",
          flush=True)
    try:
        advice = advisor.advise_model(model, x, y, batch_size=fv.batch_size,
                                      max_batch_size=max_batch, epochs=fv.epochs,
                                      steps=fv.measure_steps or None)
    except advisor.NoiseScaleError as e:
        raise cli.CommandFailed(str(e)) from None
    except ValueError as e:
        raise cli.UsageError(f"{e} (--model_fn={fv.model_fn})") from None
    advice = dataclasses.replace(advice, settings=dict(
        advice.settings, model_fn=fv.model_fn,
        command=" ".join([PROG] + [shlex.quote(a) for a in sys.argv[1:]])))
    out_dir = fv.output_dir or os.path.join(
        "runs", "advise", fv.model_fn.replace(":", "_").replace(".", "_"))
    os.makedirs(out_dir, exist_ok=True)
    print()
    for line in advice.explanation():
        print(line)
    print(advice.format_table())
    for w in advice.warnings:
        print(f"Warning: {w}")
    print(advice.recommendation())
    fit = advice.fit_arguments()
    schedule = fit["learning_rate"]
    print(f"In model.fit: batch_size={fit['batch_size']}, epochs={fit['epochs']}, optimizer "
          f"learning_rate=advice.schedule() (tfgap.LargeBatchSchedule: {schedule.total_steps} "
          f"steps, peak {float(schedule(schedule.total_steps - 1)):.4g}, "
          f"{schedule.warmup_steps} warm-up steps).")
    path = os.path.join(out_dir, ADVICE_FILE)
    advice.save(path)
    print(f"Advice in {time.time() - started:.0f}s.")
    return [("advice", path)]


def run(fv):
    """Measures, advises, prints; returns the artifacts."""
    from tfgap import advisor  # noqa: PLC0415

    if fv.model_fn is not None:
        return run_model_fn(fv)
    from tfgap.advisor.measure import (  # noqa: PLC0415
        measure_run,
        num_train_examples,
        statistics_decay,
    )

    started = time.time()
    config = trusted_config(fv)
    small = config.batch_size
    n = num_train_examples(config)
    max_batch = fv.max_batch_size or fv.num_replicas * fv.max_per_replica_batch_size
    try:  # bad sizes fail before any training
        advisor.candidate_batch_sizes(small, max_batch, num_replicas=fv.num_replicas,
                                      num_train_examples=n)
    except ValueError as e:
        computed = "" if fv.max_batch_size else (
            f" (--max_batch_size=0: --num_replicas={fv.num_replicas} x "
            f"--max_per_replica_batch_size={fv.max_per_replica_batch_size})")
        raise cli.UsageError(f"{e}{computed} The small batch is --batch_size={small}; "
                             f"{n} training examples.") from None
    per_epoch = n // small
    small_steps = max(1, round(config.epochs * per_epoch))
    first_drop = [b for b in config.lr_boundaries if b < config.epochs][:1]
    phase = round(first_drop[0] * per_epoch) if first_drop else small_steps
    steps = fv.measure_steps or min(fv.max_measure_steps,
                                    max(2, round(fv.measure_fraction * phase)))
    if steps < 2:
        raise cli.UsageError(f"Expected --measure_steps >= 2 (the standard error of B_simple "
                             f"needs two steps). Received: --measure_steps={steps}")
    noise_examples = min(fv.noise_examples, n)
    if noise_examples < 2 * small:
        raise cli.UsageError(
            f"Expected at least 2 x --batch_size = {2 * small} examples for the B_noise draws; "
            f"received {noise_examples} (--noise_examples={fv.noise_examples}, {n} training "
            "examples). Raise --noise_examples or lower --batch_size.")
    decay = (fv.noise_statistics_decay if fv["noise_statistics_decay"].present else
             statistics_decay(steps))
    rate = config.lr_values[0] * config.lr_multiplier
    momentum = config.momentum if config.optimizer == "sgd" else None
    print(f"Measuring B_simple: {steps} steps of {config.model} on {config.dataset} at batch "
          f"{small} (lr {rate:g}), from the training gradients (moving averages, decay "
          f"{decay:.4g})...", flush=True)
    measurement = measure_run(config, steps=steps, decay=decay, noise_examples=noise_examples,
                              num_draws=fv.noise_draws)
    for e in measurement.by_epoch:
        print(f"  epoch {e['epoch']:3d} (step {e['step']:6d}): B_simple = "
              f"{_number(e['b_simple'], '10.4g')} +- {_number(e['b_simple_stderr'], '.3g')}")
    scales = measurement.noise_scales
    print(f"Measuring B_noise and eps_max on the trained model: {fv.noise_draws} draws of 4 "
          f"batches of {measurement.curvature_batch_size} and one for the curvature, from "
          f"{noise_examples} training examples"
          + (f" ({scales.product} products; B_simple of the same draws = "
             f"{scales.b_simple:.4g} +- {scales.b_simple_stderr:.2g})." if scales is not None
             else f": {measurement.noise_scales_error}"), flush=True)
    step_times = None
    if fv.time_steps:
        from tfgap.advisor.measure import measure_step_times  # noqa: PLC0415

        sizes = advisor.candidate_batch_sizes(small, max_batch, num_replicas=fv.num_replicas,
                                              num_train_examples=n)
        step_times = measure_step_times(config, [b // fv.num_replicas for b in sizes])
    settings = {
        "recipe": fv.recipe, "dataset": config.dataset, "model": config.model,
        "model_options": config.model_options, "measure_steps": steps,
        "statistics_decay": decay, "b_simple_by_epoch": list(measurement.by_epoch),
        "noise_examples": noise_examples, "noise_draws": fv.noise_draws,
        "curvature_batch_size": measurement.curvature_batch_size,
        "curvature_product": None if scales is None else scales.product,
        "step_times": step_times, "measurement_seconds": round(measurement.seconds, 1),
        "command": " ".join([PROG] + [shlex.quote(a) for a in sys.argv[1:]]),
    }
    b_simple = measurement.b_simple
    if b_simple is None:
        raise cli.CommandFailed(
            f"B_simple is not defined at the end of the {steps}-step measurement: the moving "
            f"average of the |G|^2 estimates is {_number(measurement.grad_norm_sq, '.3g')} "
            f"(tr(Sigma): {_number(measurement.trace_sigma, '.3g')}); expected a positive "
            f"one. At batch {small} the gradient noise hides the gradient over this run: "
            "lengthen it (--measure_steps) or raise --batch_size.")
    try:
        advice = advisor.advise(
            b_simple, b_simple_stderr=measurement.b_simple_stderr or 0.0, small_batch_size=small,
            epochs=config.epochs, num_train_examples=n, learning_rate=rate,
            max_batch_size=max_batch, num_replicas=fv.num_replicas,
            batch_norm=_has_batch_norm(config), lr_boundaries=config.lr_boundaries,
            scaling=fv.scaling, warmup_fraction=fv.warmup_fraction, step_times=step_times,
            settings=settings, noise_scales=scales, momentum=momentum)
    except advisor.NoiseScaleError as e:
        raise cli.CommandFailed(f"{e} (--measure_steps={steps}).") from None
    except ValueError as e:  # --scaling=eps_opt without a usable B_noise
        raise cli.CommandFailed(f"{e} (--scaling={fv.scaling}).") from None
    if scales is None:
        advice = _with_warning(advice, f"B_noise not measured: {measurement.noise_scales_error}")
    return _report(fv, config, advice, started)


def _number(value, spec):
    """`value` formatted by `spec`, or `-` for a value not defined (`None`)."""
    return "-".rjust(len(format(0.0, spec))) if value is None else format(value, spec)


def _has_batch_norm(config):
    from tfgap.layers import GhostBatchNormalization  # noqa: PLC0415
    from tfgap.training import build_model  # noqa: PLC0415

    model = build_model(config)
    return any(isinstance(layer, GhostBatchNormalization) for layer in _layers(model))


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _with_warning(advice, message):
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(advice, warnings=advice.warnings + (message,))


def recommended_config(config, advice):
    """The trusted `config` changed to run the recommendation (a validated `TrainConfig`)."""
    changes = dict(advice.flags(lr_multiplier=config.lr_multiplier))
    if changes["batch_size"] == config.batch_size:
        changes["ghost_batch_size"] = config.ghost_batch_size  # the regime as trusted
    fields = dict(config.to_dict(), **changes)
    name = recipe_flags.run_name(fields)
    fields["model_dir"] = os.path.join("runs", config.dataset, name)
    if config.export_dir is not None:
        fields["export_dir"] = os.path.join("savedmodels", f"{config.dataset}_{name}")
    return config.replace(**{k: fields[k] for k in (*changes, "model_dir", "export_dir")})


def _report(fv, config, advice, started):
    c = advice.recommended
    out_dir = fv.output_dir or os.path.join(
        "runs", "advise", f"{config.dataset}_{config.model}_b{config.batch_size}")
    os.makedirs(out_dir, exist_ok=True)
    print()
    print(f"S_small = {advice.small_steps} steps at batch {advice.small_batch_size}, S_min = "
          f"{advice.s_min:.4g}, E_min = {advice.e_min:.4g} examples.")
    for line in advice.explanation():
        print(line)
    print("Predicted: S(B) = S_min (1 + B_crit / B), E(B) = B S(B) (McCandlish et al. 2018); "
          "rel wall = S(B) t(B) / (S t at the first row)"
          + (" with measured step times." if advice.settings.get("step_times") else
             " with equal step times."))
    print(advice.format_table())
    for w in advice.warnings:
        print(f"Warning: {w}")
    print(advice.recommendation())
    advice_path = os.path.join(out_dir, ADVICE_FILE)
    advice.save(advice_path)
    target = recommended_config(config, advice)
    config_path = os.path.join(out_dir, CONFIG_FILE)
    with open(config_path, "w") as f:
        json.dump(target.to_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    flags_path = os.path.join(out_dir, FLAGS_FILE)
    noise = "" if advice.b_noise is None else f" (B_noise = {advice.b_noise:.4g})"
    header = [(f"Advised by {PROG}: B_crit = B_simple = {advice.b_crit:.4g} +- "
              f"{advice.b_crit_stderr:.2g}{noise} at batch "
              f"{advice.small_batch_size}; lr {advice.learning_rate_of(c):.4g} "
              f"({advice.learning_rate_rule} rule); predicted {c.predicted_steps:.0f} steps "
              f"({c.predicted_epochs:.3g} epochs), {c.relative_wall_time:.3g}x the wall time "
              f"of batch {advice.candidates[0].batch_size}.")]
    command = recipe_flags.write_flagfile(flags_path, target, fv.recipe, header=header)
    print(f"Run it: {command}")
    print(f"Advice in {time.time() - started:.0f}s.")
    return [("advice", advice_path), ("recipe flagfile", flags_path),
            ("train config", config_path)]


def main(argv=None):
    cli.main(PROG, define=define, run=run, doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
