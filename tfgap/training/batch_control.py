"""The trainer's side of `adaptive="batch"`: each epoch's global batch, chosen by goodput.

At the start of every epoch after the first, `BatchControl.begin_epoch`
asks a `tfgap.adaptive.goodput.BatchSizeController` for the global batch `B`
among `candidate_batches(base_batch_size, max_batch_size)` that maximizes

    goodput(B) = throughput(B) * (B_simple + b0) / (B_simple + B)

(Pollux, Qiao et al. 2021, arXiv 2008.12260), `b0 = base_batch_size`, the
throughput measured by the trainer (the step times of each batch run so
far), the efficiency from the run's measured noise scale. The controller's
efficiency is written for McCandlish et al.'s `B_noise`; the trainer measures
`B_simple = tr(Sigma) / |G|^2` (`noise_statistics`), the estimate McCandlish
et al. use in its place (equal to `B_noise` for a well-conditioned Hessian),
and passes that. The first epoch runs at `batch_size`.

Why epoch starts. The whole epoch then runs at one batch, so its input is
the trainer's usual pipeline at that batch: one permutation of the training
split per `(seed, epoch)`, cut into `floor(N / B)` batches, the last
`N mod B` examples dropped. That is `tfgap.adaptive.rebatch.EpochCursor`'s
epoch (`remainder="drop"`) for a constant batch: no example is used twice
in an epoch, and none is lost beyond the dropped tail. A resume mid-epoch
skips the steps taken, at the epoch's batch. Rebatching on the host
(`rebatch.rebatch`) would allow changes mid-epoch, at the price of routing
every batch through Python outside `tf.data` and the strategy's input
distribution; it is not needed at epoch starts.

The learning rate is AdaScale's, as with `adaptive="lr"`, its gain for
`S = B / b0` (`AdaScaleControl.set_batch`: a new batch sets the gain at once);
the ghost batch stays `ghost_batch_size`, so batch normalization sees
batches of the same size whatever `B` is; the noise statistics' batch pair
follows `B`. The step function is traced once per distinct batch (a few
candidates at most).

Several workers. Each worker times its own steps, so their controllers
could choose differently, and a step at two global batches would not be one
step. At each decision every worker decides, then all train at the chief's
choice (`tfgap.training.strategy.broadcast_from_chief`, one collective per epoch; another
worker logs `"reason": "chief"` where it would have chosen otherwise). The
checkpoint, the chief's, carries the chief's timings: a resumed cluster goes
on from the chief's state.

The epochs' layout (first step and batch of each epoch started) and the
controller's JSON state (its timings and decision log) are checkpointed in
one string variable, so a resumed run knows where each epoch starts and
decides as the uninterrupted run would *given the same timings*. Step times
are wall-clock and never repeat exactly: `train(..., batch_step_time=...)`
can pin them (e.g. a table per batch) where decisions must repeat.

Every step is timed and recorded (a call's time over its steps), the first
step at a batch in a process included: it traces the step function, so the
trainer runs it as a call of its own, and the throughput model's median
(of the last 5 steps, 3 needed) discounts that one slow step. Not skipping
it keeps the recorded steps the same whether or not the run was resumed in
between: with pinned step times, the controller's state after a resume is
the uninterrupted run's, timings included.
"""

import json

import tensorflow as tf

from tfgap.adaptive.goodput import BatchSizeController, ThroughputModel, candidate_batches
from tfgap.training.config import ConfigError


class BatchControl:
    """Each epoch's batch: the decisions, the epochs' layout, the checkpointed state.

    It answers the epoch-geometry questions `StepPlan` answers for a fixed
    batch (`epoch_of`, `steps_in_epoch`, `first_step`, `epochs_completed`,
    `num_epochs`) for the epochs started so far.

    Args:
        config: the run's `TrainConfig` (`adaptive="batch"`).
        plan: its `StepPlan`.
        num_replicas: replicas in sync (every candidate must split over them).
        step_time: a function `(batch, seconds) -> seconds`, the per-step time
            recorded for the controller given the measured one; `None`: the
            measured one.
        agree: a function `batch -> batch` every worker calls with its own
            decision and that returns the one all train at (the chief's:
            `tfgap.training.strategy.broadcast_from_chief`); `None`: one process.

    Raises:
        ConfigError: a candidate batch that does not fit the replicas, the
            ghost batch or the noise statistics' split.

    Attributes:
        controller: the `BatchSizeController`.
        batch: the global batch of the epoch in progress (or of the last one).
        epochs: `[first step, batch]` of each epoch started.
        variable: the string `tf.Variable` the checkpoint carries.

    Example (the trainer's calls, by hand; 1000 examples, `T0` = 20 steps of 50):

    >>> from tfgap.training import TrainConfig, plan_steps
    >>> config = TrainConfig(dataset="mnist1d", model="mlp", model_dir="/tmp/run", epochs=1,
    ...                      batch_size=100, base_batch_size=50, max_batch_size=200,
    ...                      adaptive="batch", lr_scaling="none")
    >>> control = BatchControl(config, plan_steps(config, num_train_examples=1000),
    ...                        num_replicas=1)
    >>> control.controller.candidates, control.steps_in_epoch(0)
    ((50, 100, 150, 200), 10)
    >>> control.record(100, seconds=0.5, num_steps=5)     # 5 steps of 0.1 s at 100
    >>> control.begin_epoch(1, step=10, b_noise=400.0)    # 100 alone timed: no speed-up seen
    50
    >>> control.steps_in_epoch(1), control.epoch_of(12), control.epochs_completed(12)
    (10, (1, 2), 1.1)
    """

    def __init__(self, config, plan, num_replicas, *, step_time=None, agree=None):
        self.config, self.num_replicas = config, num_replicas
        self.num_train, self.total_steps = plan.num_train_examples, plan.total_steps
        self.num_epochs = plan.num_epochs
        candidates = candidate_batches(config.base_batch_size, config.largest_batch_size)
        for batch in candidates:
            try:
                config.replace(batch_size=batch).noise_statistics_batches(num_replicas)
            except ConfigError as e:
                raise ConfigError(
                    f"Expected every candidate batch of adaptive='batch' ({list(candidates)}: "
                    f"the multiples of base_batch_size={config.base_batch_size} up to "
                    f"max_batch_size={config.largest_batch_size}) to fit {num_replicas} "
                    f"replica(s), ghost_batch_size={config.ghost_batch_size} and the noise "
                    f"statistics. The batch of {batch} does not: {e}") from None
        self.controller = BatchSizeController(
            config.base_batch_size, candidates, initial_batch=config.batch_size,
            throughput_model=ThroughputModel(skip_after_switch=0))
        self.epochs = [[0, config.batch_size]]
        self.step_time, self.agree = step_time, agree
        self._traced = set()
        self.variable = tf.Variable("", dtype=tf.string, trainable=False, name="batch_control")

    @property
    def batch(self):
        return self.controller.batch

    # -- the epochs' geometry ----------------------------------------------------------------

    def steps_at(self, batch):
        """Steps of a whole epoch at `batch`: `floor(N / batch)`."""
        return self.num_train // batch

    def epoch_of(self, step):
        """`(epoch, step within it)` of `step`, at or after the last epoch's start.

        An epoch whose steps are all taken is over: `step` is then the next
        epoch's first (not started yet, its batch undecided).
        """
        epoch = len(self.epochs) - 1
        first, batch = self.epochs[epoch]
        if step - first >= self.steps_at(batch):
            return epoch + 1, 0
        return epoch, int(step) - first

    def first_step(self, epoch):
        return self.epochs[epoch][0]

    def steps_in_epoch(self, epoch):
        first, batch = self.epochs[epoch]
        return min(self.steps_at(batch), self.total_steps - first)

    def batch_of(self, epoch):
        return self.epochs[epoch][1]

    def epochs_completed(self, step):
        """Epochs trained after `step` steps: the whole ones, and the part of the current one."""
        for epoch in range(len(self.epochs) - 1, -1, -1):
            first, batch = self.epochs[epoch]
            if step >= first:
                return epoch + (step - first) / self.steps_at(batch)
        return 0.0

    # -- decisions and timings ---------------------------------------------------------------

    def begin_epoch(self, epoch, step, b_noise):
        """The batch of epoch `epoch`, which starts at `step`: decided now if it is new.

        The first epoch runs at `batch_size`; each later one at the
        controller's choice for `b_noise` (the run's `B_simple` so far).
        """
        if epoch < len(self.epochs):
            return self.epochs[epoch][1]
        if epoch != len(self.epochs):
            raise ValueError(f"Expected epoch {len(self.epochs)} to start next. Received: "
                             f"epoch={epoch}")
        batch = self.controller.decide(int(step), b_noise)
        self.controller.log[-1]["epoch"] = int(epoch)
        if self.agree is not None:
            agreed = round(self.agree(batch))
            if agreed != batch:  # another worker's (the chief's) decision, from its timings
                self.controller.batch = batch = agreed
                self.controller.log[-1].update(batch=agreed, reason="chief")
        self.epochs.append([int(step), int(batch)])
        return batch

    def noise_batches(self, batch):
        """`(b, B)` of the noise statistics at global batch `batch`."""
        return self.config.replace(batch_size=batch).noise_statistics_batches(self.num_replicas)

    def first_call(self, batch):
        """Whether this process has not run a step at `batch` yet (its first call traces)."""
        return batch not in self._traced

    def record(self, batch, seconds, num_steps):
        """Records a call of `num_steps` steps at `batch` that took `seconds` (wall time)."""
        self._traced.add(batch)
        if num_steps < 1:
            return
        per_step = seconds / num_steps
        if self.step_time is not None:
            per_step = float(self.step_time(batch, per_step))
        for _ in range(num_steps):
            self.controller.record(batch, per_step)

    # -- the checkpoint ----------------------------------------------------------------------

    def stash(self):
        """Copies the state into `variable` (call it before a checkpoint is written)."""
        self.variable.assign(json.dumps({"epochs": self.epochs,
                                         "controller": self.controller.state()}))

    def unstash(self, step):
        """Loads the restored `variable` (after a restore at `step`).

        Raises:
            ConfigError: a checkpoint at a step > 0 without a batch controller's
                state (a run started with another `adaptive`), or whose
                controller has other candidates.
        """
        text = self.variable.numpy().decode()
        if not text:
            if step:
                raise ConfigError(
                    f"Expected a checkpoint of an adaptive='batch' run to resume with "
                    f"adaptive='batch': the checkpoint at step {step} holds no batch "
                    "controller's state (the run was started with another adaptive). Use "
                    "another model_dir.")
            return
        state = json.loads(text)
        try:
            self.controller.load_state(state["controller"])
        except ValueError as e:
            raise ConfigError(
                "Expected the batch controller's settings the run was started with "
                f"(base_batch_size, max_batch_size). Received others: {e}") from None
        self.epochs = [[int(first), int(batch)] for first, batch in state["epochs"]]

    def values(self):
        """`{"batch_size"}`: the logs' entry."""
        return {"batch_size": self.batch}

    def summary(self):
        """`result.json`'s `"batch_control"`: the candidates, each epoch's batch, the decisions."""
        keys = ("epoch", "step", "batch", "previous", "best", "reason", "b_noise")
        return {"batch_size": self.batch, "candidates": list(self.controller.candidates),
                "epochs": [list(entry) for entry in self.epochs],
                "decisions": [{key: record.get(key) for key in keys}
                              for record in self.controller.log]}
