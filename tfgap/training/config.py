"""`TrainConfig`: every resolved setting of one training run, validated.

The trainer reads nothing else: no flags, no environment. A recipe turns its
flags into a `TrainConfig`; the tuner and the study build one in Python. The
config is written as JSON beside checkpoints, `result.json` and the exported
SavedModel, so every artifact says exactly how it was made.
"""

import dataclasses
import json
import math
import numbers

DATASETS = ("cifar10", "cifar100", "imagenet2012", "mnist", "mnist1d")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
LR_SCALINGS = ("sqrt", "linear", "none")


class ConfigError(ValueError):
    """A setting, or a combination of settings, that cannot be trained.

    Recipes turn it into a one-line usage error; Python callers get a
    `ValueError` naming what was received and what was expected.
    """


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
        dataset: a `tfgap.data` dataset name.
        model: a `tfgap.models.available_models()` name.
        model_dir: where checkpoints, TensorBoard logs, `history.json` and
            `result.json` go. Re-running with the same `model_dir` resumes.
        epochs: length of the small-batch regime in epochs (before adaptation).
        batch_size: the global batch size (all replicas together).
        base_batch_size: the small-batch size the regime was tuned for.
        ghost_batch_size: ghost batch size of Ghost Batch Normalization;
            0 = plain Batch Normalization. Must divide the per-replica batch.
        lr_boundaries: epochs (small-batch regime) at which the rate drops.
        lr_values: `len(lr_boundaries) + 1` rates at `base_batch_size`.
        lr_multiplier: extra factor on every rate (for tuners).
        lr_scaling: `"sqrt"`, `"linear"` or `"none"`.
        regime_adaptation: `True` (stretch by k), `False`, or a factor >= 1.
        warmup_epochs: linear warm-up from the unscaled rate.
        momentum: SGD momentum (no Nesterov, as the paper).
        weight_decay: coupled L2 coefficient (gradient `weight_decay * w`).
        bn_momentum: moving-average momentum of the normalization layers.
        moving_update: running-statistics rule of Ghost Batch Normalization.
        model_options: extra keyword options of `build_model` (e.g. widths).
        strategy: `"auto"`, `"one_device"`, `"mirrored"`, `"multi_worker"` or `"tpu"`.
        tpu: TPU name or address for `TPUClusterResolver` (`"local"` on a TPU VM).
        logical_cpus: split the host CPU into this many logical devices (0 = no split).
        data_dir: tensorflow-datasets data directory.
        download: let tensorflow-datasets download and prepare missing data.
        mock_data: train on tensorflow-datasets' mock data (tests, smoke runs).
        mock_examples: examples per split with `mock_data`; with `synthetic`,
            the examples evaluated (an epoch keeps the real split's length).
        synthetic: random tensors of the right shapes (throughput).
        validation_examples: examples carved from the training split for
            validation (`None` = the dataset's default: 5,000 for CIFAR, 10%
            for MNIST/MNIST-1D, 1% for ImageNet; 0 = no validation split).
        export_dir: where the SavedModel goes; `None` = no export.
        mixed_precision: `mixed_float16` on GPU, `mixed_bfloat16` on CPU/TPU.
        jit_compile: XLA-compile the forward and backward pass.
        seed: seed of the weights, the data order and the augmentation.
        deterministic: enable TensorFlow's op determinism (bitwise resume).
        eval_batch_size: evaluation batch (global); 0 = `batch_size`.
        eval_every_epochs: evaluate on the test split every this many epochs.
        checkpoint_every_steps: also checkpoint every this many steps (0 = at
            epoch ends only). A checkpoint is always written at the end.
        checkpoint_every_seconds: write a checkpoint at least this often
            (wall-clock seconds), mid-epoch included; epoch-end checkpoints no
            more often than this; 0 = a checkpoint at every epoch end (and none
            mid-epoch by time). Checkpoints of `checkpoint_every_steps`, at
            the end and on preemption are always written.
        steps_per_execution: optimizer steps per `tf.function` call (one host
            sync per call); 0 = automatic (calls of about 0.2 s in a single
            process, 1 step under several workers). Callbacks still see every
            step, after the call; `model.stop_training` takes effect at the
            end of the call.
        keep_checkpoints: checkpoints to keep.
        summary_every_steps: TensorBoard step scalars every this many steps.
        preemption: install `PreemptionCheckpointHandler` (SIGTERM saves a
            checkpoint and stops the run with `Preempted`).
        verbose: 0 silent, 1 progress bar on a terminal and lines otherwise,
            2 one line per epoch.

    Example:

    >>> config = TrainConfig(dataset="mnist", model="f1", model_dir="/tmp/run",
    ...                      epochs=2, batch_size=256, lr_boundaries=(1,),
    ...                      lr_values=(0.1, 0.01))
    >>> config.per_replica_batch_size(2)
    128
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    """

    dataset: str
    model: str
    model_dir: str
    epochs: float
    batch_size: int
    lr_boundaries: tuple = ()
    lr_values: tuple = (0.1,)
    base_batch_size: int = 128
    ghost_batch_size: int = 0
    lr_multiplier: float = 1.0
    lr_scaling: str = "sqrt"
    regime_adaptation: object = False
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    bn_momentum: float = 0.9
    moving_update: str = "sequential"
    model_options: dict = dataclasses.field(default_factory=dict)
    strategy: str = "auto"
    tpu: str | None = None
    logical_cpus: int = 0
    data_dir: str | None = None
    download: bool = False
    mock_data: bool = False
    mock_examples: int = 256
    synthetic: bool = False
    validation_examples: int | None = None
    export_dir: str | None = None
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    deterministic: bool = False
    eval_batch_size: int = 0
    eval_every_epochs: int = 1
    checkpoint_every_steps: int = 0
    checkpoint_every_seconds: float = 300.0
    steps_per_execution: int = 0
    keep_checkpoints: int = 3
    summary_every_steps: int = 100
    preemption: bool = True
    verbose: int = 1

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("dataset", _choice("dataset", self.dataset, DATASETS))
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"Expected `model` to be a model name. Received: model={self.model!r}")
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise ConfigError(
                f"Expected `model_dir` to be a directory path. Received: model_dir={self.model_dir!r}"
            )
        set_("epochs", _number("epochs", self.epochs, minimum=0.0, strict=True))
        for name in ("batch_size", "base_batch_size", "mock_examples", "keep_checkpoints",
                     "eval_every_epochs", "summary_every_steps"):
            set_(name, _integer(name, getattr(self, name), minimum=1))
        for name in ("ghost_batch_size", "logical_cpus", "seed", "eval_batch_size",
                     "checkpoint_every_steps", "steps_per_execution"):
            set_(name, _integer(name, getattr(self, name), minimum=0))
        if self.validation_examples is not None:
            set_("validation_examples",
                 _integer("validation_examples", self.validation_examples, minimum=0))
        set_("verbose", _integer("verbose", self.verbose, minimum=0))
        if self.verbose > 2:
            raise ConfigError(f"Expected `verbose` in {{0, 1, 2}}. Received: verbose={self.verbose}")
        boundaries = tuple(_number("lr_boundaries", b, minimum=0.0, strict=True)
                           for b in _sequence("lr_boundaries", self.lr_boundaries))
        values = tuple(_number("lr_values", v, minimum=0.0) for v in
                       _sequence("lr_values", self.lr_values))
        if len(values) != len(boundaries) + 1:
            raise ConfigError(
                "Expected len(lr_values) == len(lr_boundaries) + 1. Received: "
                f"lr_boundaries={list(boundaries)}, lr_values={list(values)}"
            )
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ConfigError(
                "Expected `lr_boundaries` strictly increasing. Received: "
                f"lr_boundaries={list(boundaries)}"
            )
        set_("lr_boundaries", boundaries)
        set_("lr_values", values)
        set_("lr_multiplier", _number("lr_multiplier", self.lr_multiplier, minimum=0.0, strict=True))
        set_("lr_scaling", _choice("lr_scaling", self.lr_scaling, LR_SCALINGS))
        set_("regime_adaptation", parse_regime_adaptation(self.regime_adaptation))
        set_("checkpoint_every_seconds",
             _number("checkpoint_every_seconds", self.checkpoint_every_seconds, minimum=0.0))
        set_("warmup_epochs", _number("warmup_epochs", self.warmup_epochs, minimum=0.0))
        set_("momentum", _number("momentum", self.momentum, minimum=0.0))
        if self.momentum >= 1.0:
            raise ConfigError(f"Expected `momentum` in [0, 1). Received: momentum={self.momentum}")
        set_("weight_decay", _number("weight_decay", self.weight_decay, minimum=0.0))
        set_("bn_momentum", _number("bn_momentum", self.bn_momentum, minimum=0.0))
        if self.bn_momentum >= 1.0:
            raise ConfigError(
                f"Expected `bn_momentum` in [0, 1). Received: bn_momentum={self.bn_momentum}"
            )
        if not isinstance(self.moving_update, str):
            raise ConfigError(
                "Expected `moving_update` to be a GhostBatchNormalization rule name. "
                f"Received: moving_update={self.moving_update!r}"
            )
        if not isinstance(self.model_options, dict):
            raise ConfigError(
                "Expected `model_options` to be a dict of build_model options. "
                f"Received: model_options={self.model_options!r}"
            )
        set_("model_options", dict(sorted(self.model_options.items())))
        set_("strategy", _choice("strategy", self.strategy, STRATEGIES))
        for name in ("download", "mock_data", "synthetic", "mixed_precision", "jit_compile",
                     "deterministic", "preemption"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"Expected `{name}` to be a bool. Received: {name}={getattr(self, name)!r}"
                )
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
        self.per_replica_batch_size(1)  # the ghost size must at least fit the global batch

    # -- derived values -------------------------------------------------------

    def per_replica_batch_size(self, num_replicas):
        """The batch each replica sees, after checking it and the ghost size.

        Raises:
            ConfigError: when `batch_size` does not split evenly over the
                replicas, or the ghost batch does not divide (or exceeds) the
                per-replica batch.
        """
        num_replicas = _integer("num_replicas", num_replicas, minimum=1)
        if self.batch_size % num_replicas:
            raise ConfigError(
                f"Expected batch_size divisible by the {num_replicas} replicas. "
                f"Received: batch_size={self.batch_size}"
            )
        per_replica = self.batch_size // num_replicas
        ghost = self.ghost_batch_size
        if ghost and (ghost > per_replica or per_replica % ghost):
            raise ConfigError(
                f"Expected ghost_batch_size to divide the per-replica batch of {per_replica} "
                f"(batch_size={self.batch_size} over {num_replicas} replicas). "
                f"Received: ghost_batch_size={ghost}"
            )
        return per_replica

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


def parse_regime_adaptation(value):
    """`True`, `False` or a float factor >= 1, from a bool, number or string.

    Example:

    >>> parse_regime_adaptation("true"), parse_regime_adaptation("4")
    (True, 4.0)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes"):
            return True
        if text in ("false", "no", "0"):
            return False
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(
                "Expected `regime_adaptation` to be true, false or a factor >= 1. "
                f"Received: regime_adaptation={value!r}"
            ) from None
    if isinstance(value, numbers.Real) and math.isfinite(value) and value >= 1:
        return float(value)
    raise ConfigError(
        "Expected `regime_adaptation` to be true, false or a factor >= 1. "
        f"Received: regime_adaptation={value!r}"
    )


def _choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"Expected `{name}` in {list(choices)}. Received: {name}={value!r}")
    return value


def _sequence(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"Expected `{name}` to be a list of numbers. Received: {name}={value!r}")
    return list(value)


def _number(name, value, minimum=None, strict=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"Expected `{name}` to be a finite number. Received: {name}={value!r}")
    value = float(value)
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        relation = ">" if strict else ">="
        raise ConfigError(f"Expected `{name}` {relation} {minimum:g}. Received: {name}={value:g}")
    return value


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"Expected `{name}` to be an integer. Received: {name}={value!r}")
    value = int(value)
    if value < minimum:
        raise ConfigError(f"Expected `{name}` >= {minimum}. Received: {name}={value}")
    return value
