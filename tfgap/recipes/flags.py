"""The recipes' command-line flags, defined once, and their translation to a `TrainConfig`.

Every recipe (`python -m tfgap.recipes.<name>`) takes the same flags; only
their defaults differ (the recipe's small-batch regime, see `defaults.py`), and
choosing a network with its own regime (`defaults.MODEL_REGIMES`, e.g. ImageNet's
`--model=resnet50`) switches every regime flag not given to that network's.
`--flagfile=FILE` reads flags from a file (the top-level `recipes/` files),
`--helpfull` lists them all. Every error is ONE line on stderr, never a
traceback: a bad value or an inconsistent combination exits with status 2;
missing data exits with status 1 and a message naming the dataset and
`--data_dir`; a non-finite loss exits with status 1; a preemption (SIGTERM)
exits with status 42 after saving a checkpoint (re-run the same command to
resume). The final `Done:` line gives the steps, epochs, test accuracy and the
training throughput (images/s).
"""

import os
import sys

from absl import app, flags

from tfgap.recipes.defaults import model_regime, recipe_defaults

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_PREEMPTED = 42


class UsageError(ValueError):
    """A flag value or combination that cannot run (one line, exit status 2)."""


def define_flags(defaults, flag_values=flags.FLAGS):
    """Defines every recipe flag on `flag_values`, with the recipe's `defaults`.

    Args:
        defaults: the recipe's defaults (`tfgap.recipes.defaults.RECIPES[name]`).
        flag_values: an `absl.flags.FlagValues` (a fresh one in tests).
    """
    from tfgap import models  # noqa: PLC0415 (heavy import only when defining flags)

    d = dict(defaults)
    fv = flag_values
    f = flags
    f.DEFINE_enum("model", d["model"], models.available_models(), "Network.", flag_values=fv)
    f.DEFINE_integer("batch_size", d.get("batch_size", 128),
                     "Global batch size (all replicas together).", lower_bound=1, flag_values=fv)
    f.DEFINE_integer("base_batch_size", d.get("base_batch_size", 128),
                     "Batch size of the small-batch regime the learning rates are for.",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_integer("ghost_batch_size", d.get("ghost_batch_size", 0),
                     "Ghost batch size (Ghost Batch Normalization); 0 = plain BN. Must divide "
                     "the per-replica batch.", lower_bound=0, flag_values=fv)
    f.DEFINE_enum("lr_scaling", d.get("lr_scaling", "sqrt"), ["sqrt", "linear", "none"],
                  "Learning-rate scaling with batch_size / base_batch_size.", flag_values=fv)
    f.DEFINE_string("regime_adaptation", str(d.get("regime_adaptation", "false")).lower(),
                    "Regime adaptation: true (stretch epochs and breakpoints by "
                    "batch_size / base_batch_size), false, or a factor >= 1.", flag_values=fv)
    f.DEFINE_float("warmup_epochs", d.get("warmup_epochs", 0.0),
                   "Linear warm-up epochs from the unscaled rate.", lower_bound=0.0,
                   flag_values=fv)
    f.DEFINE_float("epochs", d["epochs"],
                   "Epochs of the small-batch regime (before regime adaptation).",
                   lower_bound=0.0, flag_values=fv)
    f.DEFINE_list("lr_boundaries", [f"{b:g}" for b in d.get("lr_boundaries", ())],
                  "Epochs (small-batch regime) at which the learning rate drops.",
                  flag_values=fv)
    f.DEFINE_list("lr_values", [f"{v:g}" for v in d.get("lr_values", (0.1,))],
                  "Learning rates at base_batch_size, one more than lr_boundaries.",
                  flag_values=fv)
    f.DEFINE_float("lr_multiplier", d.get("lr_multiplier", 1.0),
                   "Extra factor on every learning rate.", flag_values=fv)
    f.DEFINE_float("momentum", d.get("momentum", 0.9), "SGD momentum (no Nesterov).",
                   flag_values=fv)
    f.DEFINE_float("weight_decay", d.get("weight_decay", 0.0),
                   "Coupled L2 weight decay (gradient weight_decay * w).", flag_values=fv)
    f.DEFINE_float("bn_momentum", d.get("bn_momentum", 0.9),
                   "Moving-average momentum of the normalization layers.", flag_values=fv)
    f.DEFINE_string("moving_update", d.get("moving_update", "sequential"),
                    "Running-statistics rule of Ghost Batch Normalization.", flag_values=fv)
    f.DEFINE_list("model_options", [], "Extra build_model options, key=value (e.g. "
                  "mlp_width=64).", flag_values=fv)
    f.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker", "tpu"],
                  "Distribution strategy.", flag_values=fv)
    f.DEFINE_string("tpu", None, "TPU name or address ('local' on a TPU VM).", flag_values=fv)
    f.DEFINE_integer("logical_cpus", 0, "Split the host CPU into N logical devices (mirrored "
                     "training on a CPU-only machine).", lower_bound=0, flag_values=fv)
    f.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.", flag_values=fv)
    f.DEFINE_boolean("download", False, "Download and prepare missing data.", flag_values=fv)
    f.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and result.json "
                    "(default: runs/<dataset>/<run name>). Re-running resumes.", flag_values=fv)
    f.DEFINE_string("export_dir", None, "SavedModel directory (default: "
                    "savedmodels/<dataset>_<run name>).", flag_values=fv)
    f.DEFINE_boolean("export", True, "Export a SavedModel at the end.", flag_values=fv)
    f.DEFINE_boolean("mock_data", False, "tensorflow-datasets mock data (tests, smoke runs).",
                     flag_values=fv)
    f.DEFINE_integer("mock_examples", 256, "Examples per split with --mock_data.",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_boolean("synthetic", False, "Random tensors of the right shapes (throughput).",
                     flag_values=fv)
    f.DEFINE_integer("validation_examples", None, "Examples carved from the training split "
                     "for validation (unset = the dataset's default; 0 = none).", lower_bound=0,
                     flag_values=fv)
    f.DEFINE_boolean("mixed_precision", False,
                     "mixed_float16 on GPU (with loss scaling), mixed_bfloat16 on CPU/TPU.",
                     flag_values=fv)
    f.DEFINE_boolean("jit_compile", False, "XLA-compile the forward and backward pass.",
                     flag_values=fv)
    f.DEFINE_integer("seed", 0, "Seed of weights, data order and augmentation.",
                     lower_bound=0, flag_values=fv)
    f.DEFINE_boolean("deterministic", False, "TensorFlow op determinism (bitwise resume).",
                     flag_values=fv)
    f.DEFINE_integer("eval_batch_size", 0, "Evaluation batch (0 = batch_size).",
                     lower_bound=0, flag_values=fv)
    f.DEFINE_integer("eval_every_epochs", 1, "Evaluate every N epochs.", lower_bound=1,
                     flag_values=fv)
    f.DEFINE_integer("checkpoint_every_steps", 0, "Also checkpoint every N steps "
                     "(0 = at epoch ends).", lower_bound=0, flag_values=fv)
    f.DEFINE_float("checkpoint_every_seconds", 300.0, "Write a checkpoint at least this often "
                   "(seconds), mid-epoch included; epoch-end ones no more often (0 = every "
                   "epoch end); also at the end and on SIGTERM.",
                   lower_bound=0.0, flag_values=fv)
    f.DEFINE_integer("steps_per_execution", 0, "Optimizer steps per tf.function call "
                     "(0 = automatic).", lower_bound=0, flag_values=fv)
    f.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.", lower_bound=1,
                     flag_values=fv)
    f.DEFINE_integer("summary_every_steps", 100, "TensorBoard step scalars every N steps.",
                     lower_bound=1, flag_values=fv)
    f.DEFINE_boolean("preemption", True, "Checkpoint and exit (status 42) on SIGTERM.",
                     flag_values=fv)
    f.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar on a terminal (lines "
                     "otherwise), 2 one line per epoch.", lower_bound=0, upper_bound=2,
                     flag_values=fv)


def run_name(config_fields):
    """A readable run name from the settings that distinguish Table 1's rows."""
    c = config_fields
    ra = c["regime_adaptation"]
    ra = "ra" if ra is True else ("" if ra is False else f"ra{ra:g}")
    parts = [c["model"], f"b{c['batch_size']}", c["lr_scaling"]]
    if c["ghost_batch_size"]:
        parts.append(f"g{c['ghost_batch_size']}")
    if ra:
        parts.append(ra)
    parts.append(f"s{c['seed']}")
    return "_".join(parts)


def config_from_flags(flag_values, defaults):
    """Turns parsed flags and a recipe's defaults into a validated `TrainConfig`.

    Raises:
        UsageError: a bad value or an inconsistent combination (one line).
    """
    from tfgap.training import ConfigError, TrainConfig, parse_regime_adaptation  # noqa: PLC0415

    fv = flag_values
    try:
        fields = dict(
            dataset=defaults["dataset"],
            model=fv.model,
            epochs=fv.epochs,
            batch_size=fv.batch_size,
            base_batch_size=fv.base_batch_size,
            ghost_batch_size=fv.ghost_batch_size,
            lr_boundaries=tuple(_floats("lr_boundaries", fv.lr_boundaries)),
            lr_values=tuple(_floats("lr_values", fv.lr_values)),
            lr_multiplier=fv.lr_multiplier,
            lr_scaling=fv.lr_scaling,
            regime_adaptation=parse_regime_adaptation(fv.regime_adaptation),
            warmup_epochs=fv.warmup_epochs,
            momentum=fv.momentum,
            weight_decay=fv.weight_decay,
            bn_momentum=fv.bn_momentum,
            moving_update=fv.moving_update,
            model_options=parse_model_options(fv.model_options),
            strategy=fv.strategy,
            tpu=fv.tpu,
            logical_cpus=fv.logical_cpus,
            data_dir=fv.data_dir,
            download=fv.download,
            mock_data=fv.mock_data,
            mock_examples=fv.mock_examples,
            synthetic=fv.synthetic,
            validation_examples=fv.validation_examples,
            mixed_precision=fv.mixed_precision,
            jit_compile=fv.jit_compile,
            seed=fv.seed,
            deterministic=fv.deterministic,
            eval_batch_size=fv.eval_batch_size,
            eval_every_epochs=fv.eval_every_epochs,
            checkpoint_every_steps=fv.checkpoint_every_steps,
            checkpoint_every_seconds=fv.checkpoint_every_seconds,
            steps_per_execution=fv.steps_per_execution,
            keep_checkpoints=fv.keep_checkpoints,
            summary_every_steps=fv.summary_every_steps,
            preemption=fv.preemption,
            verbose=fv.verbose,
        )
        name = run_name(fields)
        fields["model_dir"] = fv.model_dir or os.path.join("runs", defaults["dataset"], name)
        if fv.export:
            fields["export_dir"] = fv.export_dir or os.path.join(
                "savedmodels", f"{defaults['dataset']}_{name}")
        elif fv.export_dir:
            raise ConfigError(
                f"Expected no --export_dir with --noexport. Received: --export_dir={fv.export_dir}"
            )
        return TrainConfig(**fields)
    except ConfigError as e:
        raise UsageError(_flag_style(str(e))) from None


def apply_model_regime(flag_values, recipe):
    """Sets every regime flag the user did not give to the chosen network's regime.

    A no-op for a network without its own regime (`defaults.MODEL_REGIMES`).
    Call it after parsing and before `config_from_flags`.

    Args:
        flag_values: parsed `absl.flags.FlagValues` holding the recipe flags.
        recipe: the recipe name.
    """
    for name, value in model_regime(recipe, flag_values.model).items():
        flag = flag_values[name]
        if flag.present:
            continue
        flag.value = [f"{v:g}" for v in value] if isinstance(value, (tuple, list)) else value


def parse(argv, recipe):
    """Parses `argv` (with `argv[0]`) for `recipe` into a `TrainConfig`, in a fresh FlagValues.

    For tests and tools (the tuner reads recipe files this way). `--flagfile`
    works as on the command line.

    Raises:
        UsageError: unknown flags, bad values or an inconsistent combination.
    """
    defaults = recipe_defaults(recipe)
    fv = flags.FlagValues()
    define_flags(defaults, fv)
    try:
        rest = fv(list(argv))
    except flags.Error as e:
        raise UsageError(str(e)) from None
    if len(rest) > 1:
        raise UsageError(f"Unexpected positional arguments: {rest[1:]}")
    apply_model_regime(fv, recipe)
    return config_from_flags(fv, defaults)


def run(recipe):
    """The whole entry point of recipe `recipe`: flags in, trainer called, exit status out."""
    defaults = recipe_defaults(recipe)
    define_flags(defaults, flags.FLAGS)
    prog = f"python -m tfgap.recipes.{recipe}"

    def usage_error(message):
        sys.exit(_usage(prog, message))

    def parser(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            usage_error(e)

    def main(argv):
        from absl import logging  # noqa: PLC0415

        logging.set_verbosity(logging.WARNING)
        if len(argv) > 1:
            usage_error(f"unexpected positional arguments {argv[1:]}")
        apply_model_regime(flags.FLAGS, recipe)
        try:
            config = config_from_flags(flags.FLAGS, defaults)
        except UsageError as e:
            usage_error(e)
        sys.exit(_train(config, prog))

    app.run(main, flags_parser=parser)


def _fail(prog, message, status):
    """Writes `message` as one line on stderr (whitespace collapsed); returns `status`."""
    sys.stderr.write(f"{prog}: {' '.join(str(message).split())}\n")
    return status


def _usage(prog, message):
    return _fail(prog, f"usage error: {message} (see --helpfull)", EXIT_USAGE)


def _train(config, prog):
    """Trains `config`; returns the exit status, printing any error as one line on stderr."""
    from tfgap.data import DatasetNotPreparedError  # noqa: PLC0415
    from tfgap.training import (  # noqa: PLC0415
        ConfigError,
        NonFiniteLossError,
        Preempted,
        train,
    )

    try:
        result = train(config)
    except ConfigError as e:
        return _usage(prog, _flag_style(str(e)))
    except (DatasetNotPreparedError, NonFiniteLossError) as e:
        return _fail(prog, e, EXIT_FAILED)
    except Preempted as e:
        return _fail(prog, f"{e}. Re-run the same command to resume.", EXIT_PREEMPTED)
    test = result["test"]["accuracy"]
    speed = result.get("throughput")
    print(
        f"Done: {result['global_step']} steps, {result['epochs_completed']:.4g} epochs, "
        f"test accuracy {test if test is None else round(test, 4)}"
        + (f", {speed:.1f} images/s" if speed else "")
        + f"; result in {os.path.join(config.model_dir, 'result.json')}"
        + (f"; SavedModel in {result['export_dir']}" if result["export_dir"] else "")
    )
    return 0


def _floats(name, values):
    from tfgap.training import ConfigError  # noqa: PLC0415

    out = []
    for value in values:
        try:
            out.append(float(value))
        except ValueError:
            raise ConfigError(
                f"Expected `{name}` to be a comma-separated list of numbers. "
                f"Received: {name}={','.join(values)}"
            ) from None
    return out


def parse_model_options(items):
    """`["key=value", ...]` -> a dict, numbers cast to int or float (ConfigError if malformed)."""
    from tfgap.training import ConfigError  # noqa: PLC0415

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"Expected `model_options` as key=value pairs. Received: model_options={item}"
            )
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[key] = value
    return options


def _flag_style(message):
    """Config messages name fields as `name`; on the command line they are --name."""
    return message.replace("\n", " ").replace("Expected `", "Expected --").replace("` ", " ")
