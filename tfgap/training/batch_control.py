"""The trainer's side of `adaptive="batch"`: the global batch, chosen by goodput.

At the start of every epoch after the first (and, with `batch_decision_steps`,
every so many steps within an epoch), `BatchControl.begin` asks a
`tfgap.adaptive.goodput.BatchSizeController` for the global batch `B` among
`candidate_batches(base_batch_size, max_batch_size)` that maximizes

    goodput(B) = throughput(B) * (B_simple + b0) / (B_simple + B)

(Pollux, Qiao et al. 2021, arXiv 2008.12260), `b0 = base_batch_size`, the
throughput measured by the trainer (the step times of each batch run so
far), the efficiency from the run's measured noise scale. The controller's
efficiency is written for McCandlish et al.'s `B_noise`; the trainer measures
`B_simple = tr(Sigma) / |G|^2` (`noise_statistics`), the estimate McCandlish
et al. use in its place (equal to `B_noise` for a well-conditioned Hessian),
and passes that. The first epoch runs at `batch_size`.

Why epoch starts, and when else. With `batch_decision_steps = 0` the whole
epoch runs at one batch, so its input is the trainer's usual pipeline at that
batch: one permutation of the training split per `(seed, epoch)`, cut into
`floor(N / B)` batches, the last `N mod B` examples dropped. That is
`tfgap.adaptive.rebatch.EpochCursor`'s epoch (`remainder="drop"`) for a
constant batch: no example is used twice in an epoch, and none is lost beyond
the dropped tail. A resume mid-epoch skips the steps taken, at the epoch's
batch.

With `batch_decision_steps = D > 0` there is also a decision within an epoch
after every `D` steps since the last one. The epoch is then read from one
pipeline and one iterator, in per-replica batches of `b0` (whose order does not
depend on `B`: `tfgap.data.build_dataset` sizes its shuffle buffer from its
batch), and a step at `B` reads `B / b0` of them per replica and joins them
(`tfgap.training.inputs.TrainInput.parts`): each *segment* (the steps between
two decisions) goes on from the example where the last one stopped, with no
pipeline built and nothing skipped (only a resume skips, to its offset). So
still no example is read twice in an epoch. A mid-epoch decision chooses
among the candidates no larger than the examples left
(`BatchSizeController.decide(largest=...)`), so none is lost but the final
tail, fewer than the batch in force, where the epoch ends. The next decision
is due `D` steps after a segment starts or at the epoch's end, whichever comes
first.

The learning rate is AdaScale's, as with `adaptive="lr"`, its gain for
`S = B / b0` (`AdaScaleControl.set_batch`: a new batch sets the gain at once);
the ghost batch stays `ghost_batch_size`, so batch normalization sees
batches of the same size whatever `B` is; the noise statistics' batch pair
follows `B`. The step function is traced once per distinct batch (a few
candidates at most).

Several workers. Each worker times its own steps, so their controllers
could choose differently, and a step at two global batches would not be one
step. At each decision every worker decides, then all train at the chief's
choice (`tfgap.training.strategy.broadcast_from_chief`, one collective per
decision; another worker logs `"reason": "chief"` where it would have chosen
otherwise). The checkpoint, the chief's, carries the chief's timings: a
resumed cluster goes on from the chief's state.

The layout (each segment's first step, batch, epoch and example offset) and
the controller's JSON state (its timings and decision log) are checkpointed
in one string variable, so a resumed run knows where each segment starts,
continues one mid-segment at its offset, and decides as the uninterrupted
run would *given the same timings*. Step times
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
    """The global batch along the run: the decisions, the segments' layout, the checkpointed state.

    A *segment* is the steps between two decisions, at one batch: an epoch
    is one segment (`batch_decision_steps=0`) or several. Each is laid out
    as `[first step, batch, epoch, offset]`, `offset` the examples of its
    epoch read before it. `BatchControl` answers the epoch-geometry
    questions `StepPlan` answers for a fixed batch (`epoch_of`,
    `steps_in_epoch`, `first_step`, `epochs_completed`, `num_epochs`) for the
    epochs started so far, the epoch in progress counted as if its batch
    stayed to its end.

    Args:
        config: the run's `TrainConfig` (`adaptive="batch"`; its
            `batch_decision_steps` is the decision interval).
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
        batch: the global batch of the segment in progress (or of the last one).
        decision_steps: `config.batch_decision_steps` (0: at epoch starts only).
        segments: `[first step, batch, epoch, offset]` of each segment started.
        epochs: `[first step, batch]` of each epoch started (its first segment's).
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
    >>> control.begin(10, b_noise=400.0)                  # 100 alone timed: no speed-up seen
    50
    >>> control.steps_in_epoch(1), control.epoch_of(12), control.epochs_completed(12)
    (10, (1, 2), 1.1)

    With a decision every 4 steps, the epoch goes on at the batch chosen
    after 4 steps, from the 400th example (4 steps of 100):

    >>> control = BatchControl(config.replace(batch_decision_steps=4),
    ...                        plan_steps(config, num_train_examples=1000), num_replicas=1)
    >>> control.record(100, seconds=0.4, num_steps=4)
    >>> control.segment_end(0), control.begin(4, b_noise=400.0)
    (4, 50)
    >>> control.segments, control.read_position(5)   # at 5: 450 examples read, 3 steps left
    ([[0, 100, 0, 0], [4, 50, 0, 400]], (50, 450, 3))
    >>> control.steps_in_epoch(0), control.epoch_of(6), control.epochs_completed(6)
    (16, (0, 6), 0.5)
    """

    def __init__(self, config, plan, num_replicas, *, step_time=None, agree=None):
        self.config, self.num_replicas = config, num_replicas
        self.num_train, self.total_steps = plan.num_train_examples, plan.total_steps
        self.num_epochs = plan.num_epochs
        self.decision_steps = config.batch_decision_steps
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
        self.segments = [[0, config.batch_size, 0, 0]]
        self.step_time, self.agree = step_time, agree
        self._traced = set()
        self.variable = tf.Variable("", dtype=tf.string, trainable=False, name="batch_control")

    @property
    def batch(self):
        return self.controller.batch

    @property
    def epochs(self):
        return [[first, batch] for first, batch, _, offset in self.segments if offset == 0]

    # -- the layout's geometry ---------------------------------------------------------------

    def _steps(self, index, *, to_epoch_end=False):
        """Steps of segment `index`: to the next one's start; the last one's as far as its
        batch goes in its epoch, and (unless `to_epoch_end`) at most `decision_steps`."""
        first, batch, _, offset = self.segments[index]
        if index + 1 < len(self.segments):
            return self.segments[index + 1][0] - first
        steps = (self.num_train - offset) // batch
        if self.decision_steps and not to_epoch_end:
            steps = min(steps, self.decision_steps)
        return steps

    def _segment(self, step):
        """The index of the segment holding `step` (the last one starting at or before it)."""
        for index in range(len(self.segments) - 1, 0, -1):
            if step >= self.segments[index][0]:
                return index
        return 0

    def _next_segment(self):
        """`(first step, epoch, offset)` of the segment after the last one: the rest of its
        epoch if a whole batch of it is left, else the next epoch."""
        first, batch, epoch, offset = self.segments[-1]
        steps = self._steps(len(self.segments) - 1)
        offset += steps * batch
        if self.num_train - offset < batch:
            return first + steps, epoch + 1, 0
        return first + steps, epoch, offset

    def _epoch(self, epoch):
        """`(first step, end step, examples read)` of epoch `epoch`, its last segment's batch
        going on to the epoch's end."""
        indices = []  # from the last segment back: the trainer asks about the latest epochs
        for index in range(len(self.segments) - 1, -1, -1):
            if self.segments[index][2] < epoch:
                break
            if self.segments[index][2] == epoch:
                indices.insert(0, index)
        if not indices:
            raise ValueError(f"Expected an epoch started so far (0 to {self.segments[-1][2]}). "
                             f"Received: epoch={epoch}")
        first, batch, _, offset = self.segments[indices[-1]]
        steps = self._steps(indices[-1], to_epoch_end=True)
        return self.segments[indices[0]][0], first + steps, offset + steps * batch

    def steps_at(self, batch):
        """Steps of a whole epoch at `batch`: `floor(N / batch)`."""
        return self.num_train // batch

    def epoch_of(self, step):
        """`(epoch, step within it)` of `step`, at or after the last segment's start.

        An epoch whose steps are all taken is over: `step` is then the next
        epoch's first (not started yet, its batch undecided).
        """
        first, epoch, offset = self._next_segment()
        if step >= first and offset == 0:
            return epoch, 0
        epoch = self.segments[-1][2]
        return epoch, int(step) - self.first_step(epoch)

    def first_step(self, epoch):
        return self._epoch(epoch)[0]

    def steps_in_epoch(self, epoch):
        """Steps of epoch `epoch` (the one in progress: if its batch stays), within the run."""
        first, end, _ = self._epoch(epoch)
        return min(end, self.total_steps) - first

    def batch_of(self, epoch):
        """The batch epoch `epoch` starts at."""
        return self.segments[self._segment(self.first_step(epoch))][1]

    def batch_at(self, step):
        """The batch of the segment holding `step`."""
        return self.segments[self._segment(step)][1]

    def segment_end(self, step):
        """The step where the segment holding `step` ends (a decision, or the run's end)."""
        index = self._segment(step)
        return min(self.segments[index][0] + self._steps(index), self.total_steps)

    def read_position(self, step):
        """`(batch, offset, steps)` at `step`: its segment's batch, the examples of its epoch
        read before it, the steps left in its segment."""
        index = self._segment(step)
        first, batch, _, offset = self.segments[index]
        return batch, offset + (int(step) - first) * batch, self.segment_end(step) - int(step)

    def epochs_completed(self, step):
        """Epochs trained after `step` steps: the whole ones, and the part of the current one
        (its examples read over those it reads if its batch stays)."""
        first, batch, epoch, offset = self.segments[self._segment(step)]
        return epoch + (offset + (step - first) * batch) / self._epoch(epoch)[2]

    # -- decisions and timings ---------------------------------------------------------------

    def begin(self, step, b_noise):
        """The batch at `step`: decided now if a decision is due there and not made yet.

        Decisions are due where the last segment ends: at the next epoch's
        first step, and with `decision_steps` after that many steps of a
        segment. The first epoch starts at `batch_size`; each decision is the
        controller's for `b_noise` (the run's `B_simple` so far), among the
        candidates no larger than the examples left in the epoch.

        Raises:
            ValueError: `step` past a decision not made (the steps between
                were never laid out).
        """
        first, epoch, offset = self._next_segment()
        if step < first:
            return self.batch_at(step)
        if step != first:
            raise ValueError(f"Expected a step up to {first}, where the next decision is due. "
                             f"Received: step={step}")
        return self._decide(step, epoch, offset, b_noise)

    def _decide(self, step, epoch, offset, b_noise):
        """A decision at `step`, which starts a segment of `epoch` at example `offset`."""
        batch = self.controller.decide(int(step), b_noise, largest=self.num_train - offset)
        self.controller.log[-1].update(epoch=int(epoch), segment=len(self.segments))
        if self.agree is not None:
            agreed = round(self.agree(batch))
            if agreed != batch:  # another worker's (the chief's) decision, from its timings
                self.controller.batch = batch = agreed
                self.controller.log[-1].update(batch=agreed, reason="chief")
        self.segments.append([int(step), int(batch), int(epoch), int(offset)])
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
        self.variable.assign(json.dumps({"segments": self.segments,
                                         "decision_steps": self.decision_steps,
                                         "controller": self.controller.state()}))

    def unstash(self, step):
        """Loads the restored `variable` (after a restore at `step`).

        Raises:
            ConfigError: a checkpoint at a step > 0 without a batch controller's
                state (a run started with another `adaptive`), or whose
                controller has other candidates; one within an epoch read
                with `batch_decision_steps` 0 resumed with a positive one, or
                the reverse (the two read an epoch in different orders; a
                change at an epoch's end is fine, with `resume_with_changes`).
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
        if "segments" in state:
            self.segments = [[int(value) for value in segment] for segment in state["segments"]]
        else:  # a checkpoint from before segments: one per epoch
            self.segments = [[int(first), int(batch), epoch, 0]
                             for epoch, (first, batch) in enumerate(state["epochs"])]
        saved = int(state.get("decision_steps", 0))
        if bool(saved) != bool(self.decision_steps) and self.epoch_of(step)[1]:
            raise ConfigError(
                f"Expected batch_decision_steps{' > 0' if saved else '=0'} to resume the "
                f"checkpoint at step {step}, within epoch {self.epoch_of(step)[0]}, which was "
                f"read with batch_decision_steps={saved} (with 0 an epoch is read at its batch, "
                "else at base_batch_size from an example offset: the rest of the epoch would "
                "not be the same examples). Resume from a checkpoint at an epoch's end, or keep "
                f"it. Received: batch_decision_steps={self.decision_steps}")

    def values(self):
        """`{"batch_size"}`: the logs' entry."""
        return {"batch_size": self.batch}

    def summary(self):
        """`result.json`'s `"batch_control"`: the candidates, the decision interval, each epoch's
        first step and batch, the segments, the decisions."""
        keys = ("epoch", "segment", "step", "batch", "previous", "best", "reason", "b_noise")
        return {"batch_size": self.batch, "candidates": list(self.controller.candidates),
                "decision_steps": self.decision_steps, "epochs": self.epochs,
                "segments": [list(segment) for segment in self.segments],
                "decisions": [{key: record.get(key) for key in keys}
                              for record in self.controller.log]}
