"""The run's gradient noise statistics: `tfgap.advisor.NoiseStatistics`, checkpointed.

The moving averages live on the host (one `update` per step from the two
squared norms the step function returns, no device work) and are copied
into checkpointed float64 variables just before a checkpoint is written, as
`EpochMetrics` does, so a resumed run continues the same averages and logs
the numbers an uninterrupted run logs, bit for bit.
"""

import tensorflow as tf

from tfgap.advisor.gradient_statistics import STATE_KEYS, NoiseStatistics


class CheckpointedNoiseStatistics(tf.Module):
    """A `NoiseStatistics` (`stats`) whose state a `tf.train.Checkpoint` carries.

    Create it in the strategy's scope. `stash` copies the state into the
    variables (call it before saving); `unstash` reads them back after a
    restore. A restored state of other batch sizes or decay (a resume with
    changed settings) is not used: the averages start anew, and `unstash`
    says so.

    Args:
        small_batch: `b`, examples per small gradient.
        big_batch: `B`, examples of the step's gradient.
        decay: the moving averages' decay.

    Example:

    >>> held = CheckpointedNoiseStatistics(small_batch=8, big_batch=16, decay=0.9)
    >>> held.stats.update(small_sq=3.0, big_sq=2.0)
    >>> held.stash()
    >>> fresh = CheckpointedNoiseStatistics(small_batch=8, big_batch=16, decay=0.9)
    >>> for mine, theirs in zip(fresh.variables, held.variables):
    ...     _ = mine.assign(theirs)
    >>> fresh.unstash(), fresh.stats.state() == held.stats.state()
    (None, True)
    """

    def __init__(self, small_batch, big_batch, decay, name="noise_statistics"):
        super().__init__(name=name)
        self.stats = NoiseStatistics(small_batch, big_batch, decay)
        self._state_variables = [tf.Variable(0.0, dtype=tf.float64, trainable=False, name=key)
                                 for key in STATE_KEYS]

    def set_batches(self, small_batch, big_batch):
        """The batch pair `(b, B)` of the next updates (`adaptive="batch"` changes `B`).

        Each update's estimates of `|G|^2` and `tr(Sigma)` are unbiased for its
        own pair, and the moving averages are of those, which do not depend on
        the batch: they continue across the change.
        """
        self.stats.small_batch, self.stats.big_batch = float(small_batch), float(big_batch)

    def stash(self):
        state = self.stats.state()
        for key, variable in zip(STATE_KEYS, self._state_variables):
            variable.assign(state[key])

    def unstash(self):
        """Loads the variables' state; returns a note when it could not be used, else `None`."""
        state = {key: float(v.numpy()) for key, v in zip(STATE_KEYS, self._state_variables)}
        if not state["count"]:
            return None
        mine = self.stats.state()
        changed = [key for key in ("small_batch", "big_batch", "decay") if state[key] != mine[key]]
        if changed:
            return ("The checkpoint's noise statistics were averaged with "
                    + ", ".join(f"{k}={state[k]:g}" for k in changed) + "; this run uses "
                    + ", ".join(f"{k}={mine[k]:g}" for k in changed)
                    + ": their moving averages start anew.")
        self.stats.load_state(state)
        return None
