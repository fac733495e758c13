"""How many optimizer steps each call of the step function runs, and the measured throughput.

Several steps run per `tf.function` call (one host sync per call). A call
never crosses a step the host must see: the end of an epoch (or of a batch
segment of `adaptive="batch"`, where the next batch is decided), a
`checkpoint_every_steps` step, a step where the weight distance is recorded,
or (with `adaptive="lr"`) a step where the AdaScale gain is set.
Within those bounds the number is fixed (`steps_per_execution`, and 1 under
several workers, whose calls must match) or adapted in a single process to
calls of about `TARGET_CALL_SECONDS`. Grouping never changes the numbers,
only when the host looks.
"""

import time

# Automatic steps per execution: aim for calls of about this many seconds.
TARGET_CALL_SECONDS = 0.2
MAX_STEPS_PER_EXECUTION = 1000


class StepPacer:
    """Chooses where each call ends and times the calls.

    Args:
        steps_per_execution: steps per call; 0 = automatic.
        several_workers: whether several workers train together (then 1 step
            per call unless `steps_per_execution` is set).
        checkpoint_every_steps: calls end on multiples of it (0 = none).
        record_due: a `tfgap.diagnostics.LogSpacedSteps`; calls end at its steps.
        gain_every_steps: calls end on multiples of it too (the steps where the
            AdaScale gain is set; 0 = none).

    Example:

    >>> from tfgap.diagnostics import LogSpacedSteps
    >>> pacer = StepPacer(steps_per_execution=8, several_workers=False,
    ...                   checkpoint_every_steps=0, record_due=LogSpacedSteps())
    >>> pacer.call_end(100, epoch_end=104)
    104
    >>> pacer.call_end(100, epoch_end=200)
    108
    """

    def __init__(self, *, steps_per_execution, several_workers, checkpoint_every_steps,
                 record_due, gain_every_steps=0):
        self.fixed_steps = steps_per_execution or (1 if several_workers else 0)
        self.auto_steps = 1
        self.checkpoint_every_steps = checkpoint_every_steps
        self.gain_every_steps = gain_every_steps
        self.record_due = record_due
        self.calls = 0
        self.timed_steps, self.timed_seconds, self.timed_examples = 0, 0.0, 0
        self.last_seconds = None

    def call_end(self, step, epoch_end):
        """Where the call that starts after `step` stops: never past a step the host must see.

        `epoch_end`: the end of the epoch, or of the batch segment, in progress.
        """
        end = min(epoch_end, step + (self.fixed_steps or self.auto_steps),
                  self.record_due.next_after(step))
        for every in (self.checkpoint_every_steps, self.gain_every_steps):
            if every:
                end = min(end, (step // every + 1) * every)
        return end

    def timed(self, call, *args, batch_size=0):
        """Runs `call(*args)`, which returns its steps' rows; adapts the next calls' length.

        `batch_size`: the call's global batch, for `throughput()`. The call's
        wall time is kept in `last_seconds` (the batch controller records it).
        """
        start = time.time()
        rows = call(*args)
        seconds = self.last_seconds = time.time() - start
        if self.calls > 0:  # the first call traces the step function
            self.timed_steps += len(rows)
            self.timed_examples += len(rows) * batch_size
            self.timed_seconds += seconds
            if not self.fixed_steps:
                per_step = seconds / max(len(rows), 1)
                self.auto_steps = int(max(1, min(MAX_STEPS_PER_EXECUTION, 4 * self.auto_steps,
                                                 TARGET_CALL_SECONDS / max(per_step, 1e-6))))
        self.calls += 1
        return rows

    def throughput(self, batch_size=None):
        """Training examples per second over the timed calls (the first excluded), or `None`.

        The examples are `batch_size` per step, or (`None`) those `timed` was told.
        """
        if not self.timed_seconds:
            return None
        examples = self.timed_examples if batch_size is None else self.timed_steps * batch_size
        return examples / self.timed_seconds
