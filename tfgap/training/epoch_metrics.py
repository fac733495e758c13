"""`EpochMetrics`: the running training metrics of the epoch in progress.

The epoch's logged `loss` and `accuracy` are means over every step of the
epoch so far. The running sums live on the host (one `add` per step, no
device work) and are copied into checkpointed variables just before a
checkpoint is written, so a run resumed mid-epoch continues the same sums and
logs exactly what an uninterrupted run logs.
"""

import tensorflow as tf

_FIELDS = ("loss_sum", "loss_steps", "correct_sum", "count_sum")


class EpochMetrics(tf.Module):
    """Running sums of one epoch's training loss and accuracy, checkpointable.

    Create it in the strategy's scope (its variables are checkpointed with the
    model). `add` is host-side; `stash` copies the sums into the variables
    (call it before saving); `unstash` reads them back (after restoring a
    checkpoint taken mid-epoch).

    Example:

    >>> metrics = EpochMetrics()
    >>> metrics.add(loss=2.0, correct=3, count=4)
    >>> metrics.add(loss=1.0, correct=1, count=4)
    >>> metrics.values()
    {'loss': 1.5, 'accuracy': 0.5}
    >>> metrics.stash(); metrics.reset(); metrics.unstash(); metrics.values()
    {'loss': 1.5, 'accuracy': 0.5}
    """

    def __init__(self, name="epoch_metrics"):
        super().__init__(name=name)
        self._variables = {
            field: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=field)
            for field in _FIELDS
        }
        for field, variable in self._variables.items():
            setattr(self, f"_{field}_variable", variable)  # tracked by tf.Module
        self.reset()

    def reset(self):
        self.sums = dict.fromkeys(_FIELDS, 0.0)

    def add(self, *, loss, correct, count):
        sums = self.sums
        sums["loss_sum"] += loss
        sums["loss_steps"] += 1
        sums["correct_sum"] += correct
        sums["count_sum"] += count

    def values(self):
        """`{"loss", "accuracy"}` of the epoch so far (`None` before any step)."""
        sums = self.sums
        if not sums["loss_steps"]:
            return {"loss": None, "accuracy": None}
        count = sums["count_sum"]
        return {"loss": sums["loss_sum"] / sums["loss_steps"],
                "accuracy": sums["correct_sum"] / count if count else 0.0}

    def stash(self):
        for field, variable in self._variables.items():
            variable.assign(self.sums[field])

    def unstash(self):
        self.sums = {field: float(variable.numpy()) for field, variable in self._variables.items()}
