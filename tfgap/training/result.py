"""What `train` returns: the run's record (`result.json`) and the trained model."""

import collections.abc
import dataclasses

import keras


@dataclasses.dataclass(frozen=True, eq=False)
class TrainResult(collections.abc.Mapping):
    """The record of a run, as written to `<model_dir>/result.json`, and its trained model.

    Read it as a typed object (`result.global_step`, `result.model`) or as the
    mapping `result.json` holds (`result["test"]["accuracy"]`; `model` is not
    part of it).

    Attributes:
        status: `"completed"` or `"non_finite_loss"`.
        global_step: optimizer steps taken; `total_steps`: the run's length.
        epochs_completed: `global_step / steps_per_epoch`.
        resumed_from_step: the checkpoint's step (0 for a fresh run).
        train, validation, test: `{"loss", "accuracy"}` of the last epoch
            (validation's are `None` without a validation split).
        weight_distance: `||w_T - w_0||` over the trainable weights.
        throughput: training examples per second (first call excluded), or `None`.
        wall_time: seconds from `train` to the result.
        num_replicas, strategy: how the run was distributed.
        steps_per_epoch, stretch: the step plan (see `plan_steps`).
        num_train_examples, num_validation_examples, num_test_examples: the
            sizes trained on and evaluated.
        checkpoint: the newest checkpoint; export_dir: the SavedModel or `None`.
        history: one entry per epoch; distance_record: `[step, ||w_t - w_0||]`
            at log-spaced steps.
        config: the resolved settings (`TrainConfig.to_dict()`).
        message: why a run stopped early (`None` otherwise).
        adascale: with `adaptive="lr"`, `{"steps", "progress", "base_steps",
            "gain"}`: the steps taken, the progress reached (in steps of
            `base_batch_size`; the run ends when it reaches `base_steps`, the
            base regime's length) and the last gain; `None` otherwise. The
            same with `adaptive="batch"`.
        batch_control: with `adaptive="batch"`, `{"batch_size", "candidates",
            "decision_steps", "epochs", "segments", "decisions"}`: the last
            batch, the candidate batches, `batch_decision_steps`, `[first step,
            batch]` of each epoch, `[first step, batch, epoch, offset]` of each
            segment (the steps between two decisions; `offset`: the examples of
            its epoch read before it), and each decision (`epoch`, `segment`,
            `step`, `batch`, `previous`, `best`, `reason`, `b_noise`; see
            `tfgap.adaptive.goodput.BatchSizeController.decide`); `None` otherwise.
        model: the trained `keras.Model` (the trainer's own object).
    """

    status: str
    global_step: int
    total_steps: int
    epochs_completed: float
    resumed_from_step: int
    train: dict
    validation: dict
    test: dict
    weight_distance: float | None
    throughput: float | None
    wall_time: float
    num_replicas: int
    strategy: str
    steps_per_epoch: int
    stretch: float
    num_train_examples: int
    num_validation_examples: int
    num_test_examples: int
    checkpoint: str | None
    export_dir: str | None
    history: list
    distance_record: list
    config: dict
    message: str | None = None
    model: keras.Model | None = dataclasses.field(default=None, repr=False)
    adascale: dict | None = None
    batch_control: dict | None = None

    def to_dict(self):
        """The record as `result.json` holds it (no `model`; `message`, `adascale`,
        `batch_control` when set)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                  if field.name != "model"}
        for optional in ("message", "adascale", "batch_control"):
            if record[optional] is None:
                del record[optional]
        return record

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())


def split_metrics(logs, split):
    """`{"loss", "accuracy"}` of `split` (`"train"`, `"validation"`, `"test"`) in epoch logs."""
    prefix = {"train": "", "validation": "val_", "test": "test_"}[split]
    return {"loss": logs.get(f"{prefix}loss"), "accuracy": logs.get(f"{prefix}accuracy")}
