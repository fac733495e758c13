"""`TrainConfig`: every resolved setting of one training run, declared once, validated.

The trainer reads nothing else: no flags, no environment. A recipe turns its
flags into a `TrainConfig`; the tuner and the study build one in Python. The
config is written as JSON beside checkpoints, `result.json` and the exported
SavedModel, so every artifact says exactly how it was made.

Each field is declared once, with `setting(...)`: its help text, its help
group, its kind (`"int"`, `"float"`, `"bool"`, `"str"`, `"path"`, `"floats"`,
`"factor"` or `"options"`), its allowed values or bounds, whether `None` is
allowed and whether it is a command-line setting. `settings()` returns these
declarations; from them come the validation in `TrainConfig.__post_init__`,
the recipes' flags (`tfgap.recipes.recipe_flags`), the flags -> config mapping and the
config -> flagfile writer (`tfgap.recipes.recipe_flags.config_flags`). Adding a setting is
one field here, e.g.:

    sam_rho: float = setting(
        "Neighbourhood radius of SAM (0 = plain SGD).", "regime", "float",
        default=0.0, minimum=0.0)

Only checks that involve several fields are written out by hand, in
`__post_init__`.
"""

import dataclasses
import functools
import json
import os
import types

from tfgap import _validation as checks
from tfgap.optimizers.lars import TRUST_DENOMINATORS
from tfgap.schedules import large_batch
from tfgap.schedules.regime import SCALING_RULES

DATASETS = ("cifar10", "cifar100", "imagenet2012", "mnist", "mnist1d")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
LR_SCALINGS = SCALING_RULES
OPTIMIZERS = ("sgd", "lars")
# `adaptive`: "off"; "lr" (AdaScale's learning-rate gain); "batch" (the gain, and the global
# batch chosen by goodput at each epoch start, and every `batch_decision_steps` steps, up to
# `max_batch_size`).
ADAPTIVE = ("off", "lr", "batch")

# `LargeBatchSchedule`'s decay arguments -> the settings that give them.
_DECAY_SETTINGS = {"decay": "lr_decay", "boundaries": "lr_boundaries", "values": "lr_values",
                   "decay_epochs": "epochs", "decay_power": "lr_decay_power",
                   "end_value": "lr_end"}

# Help groups of the settings, in the order the command-line help lists them.
GROUPS = ("data", "model", "regime", "distribution", "checkpoints", "output")
KINDS = ("int", "float", "bool", "str", "path", "floats", "factor", "options")
_METADATA_KEY = "tfgap_setting"


class ConfigError(ValueError):
    """A setting, or a combination of settings, that cannot be trained.

    Messages name the arguments as Python does (`batch_size=...`); recipes turn
    them into a one-line usage error naming the flags (`--batch_size=...`).
    """


@dataclasses.dataclass(frozen=True)
class Setting:
    """The declaration of one `TrainConfig` field (see `setting`).

    `name`, `default` and `required` (no default) are filled in by `settings()`.
    """

    help: str
    group: str
    kind: str
    choices: object = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    optional: bool = False
    cli: bool = True
    may_change_on_resume: bool = False
    name: str = ""
    default: object = None
    required: bool = False

    # -- allowed values -------------------------------------------------------

    def allowed_choices(self):
        """The allowed values (a tuple), or `None` when any value of the kind goes."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def bounds(self):
        """The declared bounds: `minimum`, `maximum`, `above`, `below` (see `setting`)."""
        return dict(minimum=self.minimum, maximum=self.maximum, above=self.above,
                    below=self.below)

    def bounds_text(self):
        """The bounds as text: `">= 1"`, `"> 0"`, `"in [0, 1)"`, or `""`."""
        return checks.bounds_text(**self.bounds())

    def describe(self):
        """What the command line accepts, in words (for `--help`)."""
        choices = self.allowed_choices()
        bounds = self.bounds_text()
        text = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "path": "a path",
            "floats": "comma-separated numbers",
            "factor": "true, false or a factor",
            "options": "comma-separated key=value pairs",
        }[self.kind]
        if choices is not None:
            text = "one of: " + ", ".join(map(str, choices))
        if bounds:
            text += (", each " if self.kind == "floats" else " ") + bounds
        if self.optional:
            text += "; empty = unset"
        return text

    # -- validation -----------------------------------------------------------

    def check(self, value):
        """Returns `value` normalized (tuples, floats, sorted dicts), or raises `ConfigError`.

        The checks are the library's own (`tfgap._validation`), shared with
        `tfgap.schedules`: a value fails the same way in both.
        """
        name, error = self.name, ConfigError
        if value is None and self.optional:
            return None
        if self.kind == "factor":
            return checks.stretch(name, value, minimum=self.minimum or 1.0, text=True,
                                  error=error)
        if self.kind == "bool":
            value = checks.boolean(name, value, error=error)
        elif self.kind == "int":
            value = checks.integer(name, value, **self.bounds(), error=error)
        elif self.kind == "float":
            value = checks.number(name, value, **self.bounds(), error=error)
        elif self.kind == "floats":
            value = checks.number_list(name, value, **self.bounds(), error=error)
        elif self.kind in ("str", "path"):
            if self.kind == "path" and isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or (not value and not self.optional):
                what = "a directory path" if self.kind == "path" else "a non-empty string"
                raise error(f"Expected `{name}` to be {what}. Received: {name}={value!r}")
        elif self.kind == "options":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise error(
                    f"Expected `{name}` to be a dict of build_model options. "
                    f"Received: {name}={value!r}")
            value = dict(sorted(value.items()))
        choices = self.allowed_choices()
        if choices is not None:
            checks.choice(name, value, choices, error=error)
        return value

    # -- text (command lines and flagfiles) -----------------------------------

    def parse(self, text):
        """The value of command-line `text` (a `str`), checked; raises `ConfigError`."""
        if not isinstance(text, str):
            return self.check(text)
        stripped = text.strip()
        if self.optional and not stripped:
            return None
        if self.kind == "int":
            try:
                number = int(stripped)
            except ValueError:
                raise ConfigError(
                    f"Expected `{self.name}` to be an integer. Received: {self.name}={text}"
                ) from None
            return self.check(number)
        if self.kind == "float":
            return self.check(self._float(stripped, text))
        if self.kind == "bool":
            lowered = stripped.lower()
            if lowered in ("true", "t", "1", "yes"):
                return True
            if lowered in ("false", "f", "0", "no"):
                return False
            raise ConfigError(f"Expected `{self.name}` to be true or false. "
                              f"Received: {self.name}={text}")
        if self.kind == "floats":
            items = [item.strip() for item in stripped.split(",") if item.strip()]
            return self.check(tuple(self._float(item, text, listed=True) for item in items))
        if self.kind == "factor":
            return self.check(stripped)
        if self.kind == "options":
            return self.check(parse_options(stripped, name=self.name))
        return self.check(stripped if self.kind in ("str", "path") else text)

    def _float(self, item, text, listed=False):
        try:
            return float(item)
        except ValueError:
            what = "a comma-separated list of numbers" if listed else "a finite number"
            raise ConfigError(
                f"Expected `{self.name}` to be {what}. Received: {self.name}={text}") from None

    def format(self, value):
        """`value` as command-line text (the inverse of `parse`)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        if isinstance(value, (tuple, list)):
            return ",".join(self.format(v) for v in value)
        if isinstance(value, dict):
            return ",".join(f"{k}={self.format(v)}" for k, v in value.items())
        return str(value)

    def to_flag(self, value):
        """`value` as one command-line flag: `--name=value`, or `--name` / `--noname` for a bool."""
        if self.kind == "bool":
            return f"--{self.name}" if value else f"--no{self.name}"
        return f"--{self.name}={self.format(value)}"


def setting(help, group, kind, *, default=dataclasses.MISSING, **spec):  # noqa: A002
    """Declares one `TrainConfig` field: a `dataclasses.field` carrying its `Setting`.

    Args:
        help: what the setting does, one or two sentences (docstring and `--help`).
        group: one of `GROUPS` (where `--help` lists it).
        kind: one of `KINDS`: `"int"`, `"float"`, `"bool"`, `"str"`, `"path"`,
            `"floats"` (a tuple of numbers; the command line takes `1,2,3`),
            `"factor"` (true, false or a number >= `minimum`) or `"options"`
            (a dict; the command line takes `key=value,key=value`).
        default: the default; omitted for a required field. A dict default is
            copied per instance.
        **spec: `choices` (a tuple, or a function returning one, evaluated
            when needed), `minimum`/`maximum` (inclusive), `above`/`below`
            (exclusive), `optional=True` (`None` allowed; unset on the command
            line), `cli=False` (not a command-line flag: set by the library),
            `may_change_on_resume=True` (a run in `model_dir` may be resumed
            with another value: the setting does not shape the checkpoint or
            the numbers trained, e.g. how often to checkpoint).

    Returns:
        A `dataclasses.Field` for the class body.
    """
    if group not in GROUPS:
        raise ValueError(f"Expected `group` in {list(GROUPS)}. Received: group={group!r}")
    if kind not in KINDS:
        raise ValueError(f"Expected `kind` in {list(KINDS)}. Received: kind={kind!r}")
    metadata = {_METADATA_KEY: Setting(help=" ".join(help.split()), group=group, kind=kind,
                                       **spec)}
    if isinstance(default, dict):
        frozen = dict(default)
        return dataclasses.field(default_factory=lambda: dict(frozen), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _model_names():
    from tfgap.models import available_models  # noqa: PLC0415 (Keras only when needed)

    return available_models()


def _moving_updates():
    from tfgap.layers.ghost_batch_normalization import MOVING_UPDATES  # noqa: PLC0415

    return MOVING_UPDATES


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every resolved setting of one training run.

    The learning-rate regime is the small-batch one (`lr_boundaries` in epochs
    at `base_batch_size`, `lr_values` the rates); the trainer adapts it to
    `batch_size` with `tfgap.schedules.LargeBatchSchedule`:

        lr(step) = lr_multiplier * scale(k) * values[i],  k = batch_size / base_batch_size
        scale(k) = sqrt(k) ("sqrt"), k ("linear"), 1 ("none")
        epochs trained = epochs * stretch,  stretch = k if regime_adaptation is True

    Paper: Hoffer, Hubara & Soudry 2017, "Train longer, generalize better".

    Args:
<settings>

    Example:

    >>> config = TrainConfig(dataset="mnist", model="f1", model_dir="/tmp/run",
    ...                      epochs=2, batch_size=256, lr_boundaries=(1,),
    ...                      lr_values=(0.1, 0.01))
    >>> config.per_replica_batch_size(2)
    128
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    >>> settings()["batch_size"].describe()
    'an integer >= 1'
    """

    dataset: str = setting("A `tfgap.data` dataset name (the recipe's).", "data", "str",
                           choices=DATASETS, cli=False)
    model: str = setting("Network: a `tfgap.models.available_models()` name.", "model", "str",
                         choices=_model_names)
    model_dir: str = setting(
        "Where checkpoints, TensorBoard logs, `history.json` and `result.json` go. Re-running "
        "with the same directory resumes.", "output", "path", may_change_on_resume=True)
    epochs: float = setting("Length of the small-batch regime in epochs (before regime "
                            "adaptation).", "regime", "float", above=0.0, may_change_on_resume=True)
    batch_size: int = setting("The global batch size (all replicas together).", "regime",
                              "int", minimum=1)
    lr_boundaries: tuple = setting(
        "Epochs (of the small-batch regime) at which the learning rate drops, strictly "
        "increasing.", "regime", "floats", default=(), above=0.0)
    lr_values: tuple = setting("Learning rates at `base_batch_size`, one more than "
                               "`lr_boundaries`.", "regime", "floats", default=(0.1,),
                               minimum=0.0)
    base_batch_size: int = setting("The small batch size the learning-rate regime was tuned "
                                   "for.", "regime", "int", default=128, minimum=1)
    ghost_batch_size: int = setting(
        "Ghost batch size of Ghost Batch Normalization; 0 = plain Batch Normalization. Must "
        "divide the per-replica batch.", "model", "int", default=0, minimum=0)
    lr_multiplier: float = setting("Extra factor on every learning rate (for tuners).",
                                   "regime", "float", default=1.0, above=0.0)
    lr_scaling: str = setting(
        "Learning-rate scaling with k = `batch_size` / `base_batch_size`: sqrt(k), k or 1.",
        "regime", "str", default="sqrt", choices=LR_SCALINGS)
    regime_adaptation: object = setting(
        "Regime adaptation: true (stretch the epochs and rate drops by k = `batch_size` / "
        "`base_batch_size`), false, or a stretch factor >= 1.", "regime", "factor",
        default=False, minimum=1.0)
    warmup_epochs: float = setting("Linear warm-up epochs (from `warmup_start` to the scaled "
                                   "`lr_values[0]`).", "regime", "float", default=0.0,
                                   minimum=0.0)
    warmup_start: str = setting(
        "Where the warm-up starts: 'base', the unscaled `lr_values[0]` (Goyal et al. 2017), or "
        "'zero' (You et al. 2017; the MLPerf reference).", "regime", "str", default="base",
        choices=large_batch.WARMUP_STARTS)
    lr_decay: str = setting(
        "How the rate falls after the warm-up: 'piecewise' (the `lr_values` at the "
        "`lr_boundaries`, the paper's) or 'polynomial' (You et al. 2017: from `lr_values[0]` "
        "to `lr_end` at the end of the run as (1 - t)^`lr_decay_power`; one `lr_values`, no "
        "`lr_boundaries`).", "regime", "str", default="piecewise", choices=large_batch.DECAYS)
    lr_decay_power: float = setting("Power of the polynomial decay (lr_decay='polynomial').",
                                    "regime", "float", default=2.0, above=0.0)
    lr_end: float = setting("Final rate of the polynomial decay, at `base_batch_size` and "
                            "scaled like `lr_values` (lr_decay='polynomial').", "regime",
                            "float", default=0.0, minimum=0.0)
    label_smoothing: float = setting(
        "Label smoothing of the training loss (Szegedy et al. 2016): the target is "
        "(1 - s) one-hot + s / classes. Validation and test losses stay plain cross-entropy.",
        "regime", "float", default=0.0, minimum=0.0, below=1.0)
    momentum: float = setting("Momentum of the optimizer (no Nesterov, as the paper).",
                              "regime", "float", default=0.9, minimum=0.0, below=1.0)
    optimizer: str = setting(
        "'sgd': momentum SGD (the paper's); 'lars': LARS (You et al. 2017), a layer-wise trust "
        "ratio `lars_eta * ||w|| / ||g + weight_decay * w||` on every kernel.", "regime", "str",
        default="sgd", choices=OPTIMIZERS)
    lars_eta: float = setting("Trust coefficient of LARS (with optimizer='lars').", "regime",
                              "float", default=0.001, above=0.0)
    lars_trust_denominator: str = setting(
        "Denominator of the LARS trust ratio: 'norm_of_sum' ||g + weight_decay * w|| or "
        "'sum_of_norms' ||g|| + weight_decay * ||w|| (You et al. 2017's Algorithm 1; the MLPerf "
        "reference).", "regime", "str", default="norm_of_sum", choices=TRUST_DENOMINATORS)
    sam_rho: float = setting(
        "Sharpness-Aware Minimization radius (Foret et al. 2021); 0 = off. A SAM step costs "
        "about two plain steps; the pass at the perturbed weights changes no BN statistics.",
        "regime", "float", default=0.0, minimum=0.0)
    sam_adaptive: bool = setting("Adaptive SAM (Kwon et al. 2021): a scale-invariant "
                                 "perturbation (with sam_rho > 0).", "regime", "bool",
                                 default=False)
    weight_decay: float = setting("Coupled L2 coefficient (gradient `weight_decay * w`) on "
                                  "every kernel; with optimizer='lars', LARS applies it.",
                                  "regime", "float", default=0.0, minimum=0.0)
    bn_momentum: float = setting("Moving-average momentum of the normalization layers.",
                                 "model", "float", default=0.9, minimum=0.0, below=1.0)
    moving_update: str = setting("Running-statistics rule of Ghost Batch Normalization.",
                                 "model", "str", default="sequential", choices=_moving_updates)
    model_options: dict = setting("Extra keyword options of `build_model` (e.g. "
                                  "mlp_width=64).", "model", "options", default={})
    strategy: str = setting("Distribution strategy.", "distribution", "str", default="auto",
                            choices=STRATEGIES, may_change_on_resume=True)
    tpu: str | None = setting("TPU name or address for `TPUClusterResolver` ('local' on a "
                              "TPU VM).", "distribution", "str", default=None, optional=True,
                              may_change_on_resume=True)
    logical_cpus: int = setting("Split the host CPU into this many logical devices (mirrored "
                                "training on a CPU-only machine); 0 = no split.",
                                "distribution", "int", default=0, minimum=0,
                                may_change_on_resume=True)
    data_dir: str | None = setting("tensorflow-datasets data directory.", "data", "path",
                                   default=None, optional=True, may_change_on_resume=True)
    download: bool = setting("Let tensorflow-datasets download and prepare missing data.",
                             "data", "bool", default=False, may_change_on_resume=True)
    mock_data: bool = setting("Train on tensorflow-datasets' mock data (tests, smoke runs).",
                              "data", "bool", default=False)
    mock_examples: int = setting(
        "Examples per split with `mock_data`; with `synthetic`, the examples evaluated (an "
        "epoch keeps the real split's length).", "data", "int", default=256, minimum=1)
    synthetic: bool = setting("Random tensors of the right shapes (throughput).", "data",
                              "bool", default=False)
    validation_examples: int | None = setting(
        "Examples carved from the training split for validation (None = the dataset's "
        "default: 5,000 for CIFAR, 10% for MNIST/MNIST-1D, 1% for ImageNet; 0 = no "
        "validation split).", "data", "int", default=None, minimum=0, optional=True)
    export_dir: str | None = setting("Where the SavedModel goes; None = no export.", "output",
                                     "path", default=None, optional=True, may_change_on_resume=True)
    mixed_precision: bool = setting("`mixed_float16` on GPU (with loss scaling), "
                                    "`mixed_bfloat16` on CPU/TPU.", "distribution", "bool",
                                    default=False)
    jit_compile: bool = setting("XLA-compile the forward and backward pass.", "distribution",
                                "bool", default=False, may_change_on_resume=True)
    seed: int = setting("Seed of the weights, the data order and the augmentation.", "regime",
                        "int", default=0, minimum=0, maximum=2**32 - 1)
    deterministic: bool = setting("Enable TensorFlow's op determinism (bitwise resume).",
                                  "distribution", "bool", default=False, may_change_on_resume=True)
    eval_batch_size: int = setting("Evaluation batch (global); 0 = `batch_size`.", "output",
                                   "int", default=0, minimum=0, may_change_on_resume=True)
    eval_every_epochs: int = setting("Evaluate validation and test every this many epochs.",
                                     "output", "int", default=1, minimum=1,
                                     may_change_on_resume=True)
    checkpoint_every_steps: int = setting(
        "Also checkpoint every this many steps (0 = none by step count). A checkpoint is "
        "always written at the end.", "checkpoints", "int", default=0, minimum=0,
        may_change_on_resume=True)
    checkpoint_every_seconds: float = setting(
        "Write a checkpoint at least this often (wall-clock seconds), mid-epoch included; "
        "epoch-end checkpoints no more often than this; 0 = a checkpoint at every epoch end "
        "(and none mid-epoch by time). Checkpoints of `checkpoint_every_steps`, at the end "
        "and on preemption are always written.", "checkpoints", "float", default=300.0,
        minimum=0.0, may_change_on_resume=True)
    steps_per_execution: int = setting(
        "Optimizer steps per `tf.function` call (one host sync per call); 0 = automatic "
        "(calls of about 0.2 s in a single process, 1 step under several workers). "
        "Callbacks still see every step, after the call; `model.stop_training` takes effect "
        "at the end of the call.", "distribution", "int", default=0, minimum=0,
        may_change_on_resume=True)
    keep_checkpoints: int = setting("Checkpoints to keep.", "checkpoints", "int", default=3,
                                    minimum=1, may_change_on_resume=True)
    summary_every_steps: int = setting("TensorBoard step scalars every this many steps.",
                                       "output", "int", default=100, minimum=1,
                                       may_change_on_resume=True)
    preemption: bool = setting(
        "Install `PreemptionCheckpointHandler`: SIGTERM saves a checkpoint and stops the run "
        "with `Preempted` (exit status 42 on the command line).", "checkpoints", "bool",
        default=True, may_change_on_resume=True)
    resume_with_changes: bool = setting(
        "Resume a run in `model_dir` although settings that shape it differ from the ones it "
        "was started with (each change is recorded in config.json and history.json); without "
        "it such a resume is refused, naming each difference.", "checkpoints", "bool",
        default=False, may_change_on_resume=True)
    start_over_if_damaged: bool = setting(
        "Start from step 0 when `model_dir` holds checkpoint files but none is intact (they "
        "are moved to checkpoints/damaged/, not deleted); without it such a run is refused.",
        "checkpoints", "bool", default=False, may_change_on_resume=True)
    noise_statistics: bool = setting(
        "Measure the gradient noise scale B_simple = tr(Sigma) / |G|^2 from the training "
        "gradients themselves (McCandlish et al. 2018): the per-replica gradients against the "
        "all-reduced one (one extra all-reduce per step), or on one replica the gradients of "
        "the two half batches whose sum is the step's gradient (ghost_batch_size must divide "
        "batch_size / 2; with plain Batch Normalization each half is normalized on its own). "
        "Moving averages of |G|^2 and tr(Sigma) are checkpointed and logged per epoch as "
        "grad_norm_sq, trace_sigma, b_simple and b_simple_stderr (history.json, TensorBoard). "
        "Always on with adaptive='lr' or 'batch' (the gain needs them).", "output", "bool",
        default=False)
    adaptive: str = setting(
        "Adaptive large-batch training. 'off'; 'lr': AdaScale (Johnson et al. 2020, arXiv "
        "2007.05105): the regime written for `base_batch_size` runs at `batch_size` >= it, each "
        "step at the rate gain * schedule(progress), the gain r = (1 + B_simple / "
        "base_batch_size) / (1 + B_simple / batch_size) in [1, batch_size / base_batch_size] "
        "from the measured noise scale (noise_statistics is implied), the progress the sum of "
        "the past gains in `base_batch_size` steps; the run ends when the progress reaches the "
        "base regime's steps. Needs lr_scaling='none' and regime_adaptation=false (the gain "
        "replaces both). The gain is updated every `steps_per_execution` steps (every step "
        "with 0). 'batch': the same gain and progress, and at each epoch start (from the "
        "second; and within epochs every `batch_decision_steps` steps) the global batch is "
        "chosen among the multiples of `base_batch_size` up to `max_batch_size` that maximizes goodput, measured throughput times the statistical "
        "efficiency (B_simple + base_batch_size) / (B_simple + B) (Pollux, Qiao et al. 2021, "
        "arXiv 2008.12260); the run starts at `batch_size`.", "regime", "str", default="off",
        choices=ADAPTIVE)
    max_batch_size: int = setting(
        "With adaptive='batch': the largest global batch the controller may choose, a multiple "
        "of `base_batch_size` and >= `batch_size`; 0 = `batch_size` (the batch may only "
        "shrink). Must be 0 with any other `adaptive`.", "regime", "int", default=0,
        minimum=0)
    batch_decision_steps: int = setting(
        "With adaptive='batch': the decision interval. 0 = the batch is chosen at epoch starts "
        "only; N > 0 = also within an epoch, after every N steps since the last decision (a "
        "multiple of `steps_per_execution` when that is set): the epoch goes on through the "
        "same permutation of the training examples at the new batch, never larger than the "
        "examples left, and ends when fewer than the current batch remain. Must be 0 with any "
        "other `adaptive`.", "regime", "int", default=0, minimum=0)
    noise_statistics_decay: float = setting(
        "Decay of the moving averages of noise_statistics (bias-corrected; 0.99 averages about "
        "the last 200 steps).", "output", "float", default=0.99, minimum=0.0, below=1.0)
    verbose: int = setting("0 silent, 1 progress bar on a terminal and lines otherwise, 2 one "
                           "line per epoch.", "output", "int", default=1, minimum=0, maximum=2,
                           may_change_on_resume=True)

    def __post_init__(self):
        # Each field on its own, from its declaration.
        for name, declared in settings().items():
            object.__setattr__(self, name, declared.check(getattr(self, name)))
        # Combinations of fields.
        large_batch.check_decay(
            self.lr_decay, self.lr_boundaries, self.lr_values,
            decay_epochs=self.decay_epochs, decay_power=self.lr_decay_power,
            end_value=self.lr_end, warmup_start=self.warmup_start, error=ConfigError,
            names=_DECAY_SETTINGS)
        checks.one_value_per_phase(self.lr_boundaries, self.lr_values,
                                   names=("lr_boundaries", "lr_values"), error=ConfigError)
        checks.strictly_increasing("lr_boundaries", self.lr_boundaries, error=ConfigError)
        if self.mock_data and self.synthetic:
            raise ConfigError(
                "Expected at most one of `mock_data` and `synthetic`. "
                "Received: mock_data=True, synthetic=True"
            )
        if self.strategy == "tpu" and not self.tpu:
            raise ConfigError(
                "Expected `tpu` (a TPU name, or 'local' on a TPU VM) with strategy='tpu'. "
                f"Received: tpu={self.tpu!r}"
            )
        if self.strategy not in ("auto", "tpu") and self.tpu:
            raise ConfigError(
                f"Expected no `tpu` with strategy={self.strategy!r} (use strategy='tpu' or "
                f"'auto'). Received: tpu={self.tpu!r}"
            )
        if self.strategy == "one_device" and self.logical_cpus > 1:
            raise ConfigError(
                "Expected logical_cpus <= 1 with strategy='one_device' (the split is for "
                f"'mirrored' or 'auto'). Received: logical_cpus={self.logical_cpus}"
            )
        self._check_adaptive()
        self.per_replica_batch_size(1)  # the ghost size must at least fit the global batch

    def _check_adaptive(self):
        """`adaptive` against the settings it replaces or needs (ConfigError naming both)."""
        if self.max_batch_size and self.adaptive != "batch":
            raise ConfigError(
                "Expected max_batch_size=0 unless adaptive='batch' (only the batch controller "
                f"reads it). Received: adaptive={self.adaptive!r}, "
                f"max_batch_size={self.max_batch_size}")
        if self.batch_decision_steps and self.adaptive != "batch":
            raise ConfigError(
                "Expected batch_decision_steps=0 unless adaptive='batch' (only the batch "
                f"controller reads it). Received: adaptive={self.adaptive!r}, "
                f"batch_decision_steps={self.batch_decision_steps}")
        if self.batch_decision_steps % (self.steps_per_execution or 1):
            raise ConfigError(
                "Expected batch_decision_steps to be a multiple of steps_per_execution (the "
                "batch changes only between calls of the step function: an interval of whole "
                "calls). Received: "
                f"batch_decision_steps={self.batch_decision_steps}, "
                f"steps_per_execution={self.steps_per_execution}")
        if self.adaptive == "off":
            return
        if self.lr_scaling != "none":
            raise ConfigError(
                f"Expected lr_scaling='none' with adaptive={self.adaptive!r} (the AdaScale gain "
                "scales the rate). Received: adaptive="
                f"{self.adaptive!r}, lr_scaling={self.lr_scaling!r}")
        if self.regime_adaptation is not False:
            raise ConfigError(
                f"Expected regime_adaptation=False with adaptive={self.adaptive!r} (the AdaScale "
                "progress stretches the regime). Received: adaptive="
                f"{self.adaptive!r}, regime_adaptation={self.regime_adaptation!r}")
        if self.batch_size < self.base_batch_size:
            raise ConfigError(
                f"Expected batch_size >= base_batch_size with adaptive={self.adaptive!r} "
                "(AdaScale scales a regime up from its batch). Received: "
                f"adaptive={self.adaptive!r}, batch_size={self.batch_size}, "
                f"base_batch_size={self.base_batch_size}")
        if self.adaptive != "batch":
            return
        base, largest = self.base_batch_size, self.largest_batch_size
        if self.batch_size % base or largest % base or largest < self.batch_size:
            raise ConfigError(
                "Expected batch_size and max_batch_size multiples of base_batch_size, with "
                "batch_size <= max_batch_size, with adaptive='batch' (the candidate batches are "
                f"the multiples of {base} up to max_batch_size; the run starts at batch_size). "
                f"Received: batch_size={self.batch_size}, max_batch_size={self.max_batch_size}"
                f"{' (0 = batch_size)' if not self.max_batch_size else ''}, "
                f"base_batch_size={base}")

    # -- derived values -------------------------------------------------------

    def per_replica_batch_size(self, num_replicas):
        """The batch each replica sees, after checking it and the ghost size.

        Raises:
            ConfigError: when `batch_size` does not split evenly over the
                replicas, or the ghost batch does not divide (or exceeds) the
                per-replica batch.
        """
        num_replicas = checks.integer("num_replicas", num_replicas, minimum=1, error=ConfigError)
        if self.batch_size % num_replicas:
            raise ConfigError(
                f"Expected batch_size divisible by the {num_replicas} replicas. "
                f"Received: batch_size={self.batch_size}"
            )
        per_replica = self.batch_size // num_replicas
        ghost = self.ghost_batch_size
        if ghost and (ghost > per_replica or per_replica % ghost):
            where = (f"the batch of {per_replica} (batch_size={self.batch_size}; with several "
                     "replicas, the per-replica batch)" if num_replicas == 1 else
                     f"the per-replica batch of {per_replica} (batch_size={self.batch_size} "
                     f"over {num_replicas} replicas)")
            raise ConfigError(
                f"Expected ghost_batch_size to divide {where}. Received: ghost_batch_size={ghost}")
        return per_replica

    def noise_statistics_batches(self, num_replicas):
        """`(b, B)`: the small and big batch of `noise_statistics` over `num_replicas`.

        Several replicas: `b` is the per-replica batch. One replica: the
        batch is split in two halves, `b = batch_size / 2`.

        Raises:
            ConfigError: on one replica, an odd `batch_size`, or a ghost batch
                that does not divide the half batch.
        """
        per_replica = self.per_replica_batch_size(num_replicas)
        if num_replicas > 1:
            return per_replica, self.batch_size
        half, ghost = self.batch_size // 2, self.ghost_batch_size
        if self.batch_size % 2 or half == 0:
            raise ConfigError(
                "Expected an even batch_size >= 2 with noise_statistics on one replica (the "
                f"batch is split into two halves). Received: batch_size={self.batch_size}")
        if ghost and half % ghost:
            raise ConfigError(
                f"Expected ghost_batch_size to divide the half batch of {half} with "
                "noise_statistics on one replica (each half is a forward pass of its own). "
                f"Received: ghost_batch_size={ghost}, batch_size={self.batch_size}")
        return half, self.batch_size

    @property
    def measures_noise(self):
        """Whether the run measures the gradient noise statistics: `noise_statistics`, or
        `adaptive='lr'` or `'batch'`, whose gain (and batch) are computed from them."""
        return self.noise_statistics or self.adaptive != "off"

    @property
    def largest_batch_size(self):
        """The largest global batch of the run: `max_batch_size` (0: `batch_size`) with
        `adaptive='batch'`, else `batch_size`."""
        if self.adaptive == "batch" and self.max_batch_size:
            return self.max_batch_size
        return self.batch_size

    @property
    def decay_epochs(self):
        """The polynomial decay's length in epochs (`epochs`), `None` for a piecewise one."""
        return self.epochs if self.lr_decay == "polynomial" else None

    @property
    def global_eval_batch_size(self):
        return self.eval_batch_size or self.batch_size

    # -- serialization --------------------------------------------------------

    def to_dict(self):
        """A JSON-ready dict of every field (tuples become lists)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values):
        """Builds a config from `to_dict()` output; unknown keys are an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"Expected only TrainConfig fields. Received unknown keys: {unknown}"
            )
        return cls(**values)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@functools.cache
def settings():
    """Every `TrainConfig` field's `Setting`, by name, in declaration order.

    Each carries its `name`, `default` and `required` (True: no default); the
    mapping is read-only.

    Example:

    >>> declared = settings()["regime_adaptation"]
    >>> declared.group, declared.default, declared.parse("4"), declared.to_flag(True)
    ('regime', False, 4.0, '--regime_adaptation=true')
    >>> [name for name, s in settings().items() if not s.cli]
    ['dataset']
    """
    out = {}
    for field in dataclasses.fields(TrainConfig):
        declared = field.metadata[_METADATA_KEY]
        default, required = field.default, False
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        elif default is dataclasses.MISSING:
            default, required = None, True
        out[field.name] = dataclasses.replace(declared, name=field.name, default=default,
                                              required=required)
    return types.MappingProxyType(out)


def _settings_doc():
    lines = []
    for name, declared in settings().items():
        text = f"{name}: {declared.help}"
        if declared.choices is not None and not callable(declared.choices):
            text += f" One of {', '.join(map(repr, declared.allowed_choices()))}."
        words, line = text.split(), "        "
        for word in words:
            if len(line) + len(word) + 1 > 88 and line.strip():
                lines.append(line.rstrip())
                line = "            "
            line += word + " "
        lines.append(line.rstrip())
    return "\n".join(lines)


TrainConfig.__doc__ = TrainConfig.__doc__.replace("<settings>", _settings_doc())


def parse_regime_adaptation(value, *, name="regime_adaptation", minimum=1.0):
    """`True`, `False` or a float factor >= 1, from a bool, number or string.

    Example:

    >>> parse_regime_adaptation("true"), parse_regime_adaptation("4")
    (True, 4.0)
    """
    return checks.stretch(name, value, minimum=minimum, text=True, error=ConfigError)


def parse_options(text, *, name="model_options"):
    """`"key=value,key=value"` (or a list of `"key=value"`) -> a dict; numbers become int or float.

    Example:

    >>> parse_options("mlp_width=64,mlp_depth=2,norm=gbn")
    {'mlp_width': 64, 'mlp_depth': 2, 'norm': 'gbn'}
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    options = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Expected `{name}` as key=value pairs. Received: {name}={item}")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[key.strip()] = value
    return options
