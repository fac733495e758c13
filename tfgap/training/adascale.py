"""The trainer's side of `adaptive="lr"` (AdaScale): each call's gain, the progress, the end.

AdaScale (Johnson et al. 2020, arXiv 2007.05105; `tfgap.adaptive.gain`) runs
the regime written for `b0 = base_batch_size` at `B = batch_size`: the step's
rate is `gain * schedule(progress)`, the gain `r = (1 + B_simple / b0) / (1 +
B_simple / B)` from the run's measured noise scale, the progress the sum of
the past gains in `b0`-steps, and the run ends when the progress reaches the
base regime's length `T0` (`StepPlan.base_steps`).

The graph holds the truth: the optimizer's `AdaScaleLearningRate` owns two
float64 variables, `gain` and `progress`, checkpointed with the run; each step
adds the gain to the progress after applying (`make_train_step(adascale=...)`).
The host, between calls of the step function (`AdaScaleControl`):

- at a step that is a multiple of `every_steps` (`steps_per_execution`, or 1),
  sets the gain from the noise statistics of all the steps before it
  (`tfgap.adaptive.adascale_gain`; 1 before any is measured), so the gain is
  constant within a call and the same at the same step whatever the calls'
  grouping, a resume included (the restored variable carries it between);
- ends the call at the step whose progress reaches `T0` (the float64 sums the
  graph makes, added in the same order), so no step runs after the end;
- reads the progress back after the call.
"""

import keras
import numpy as np

from tfgap.adaptive import adascale_gain


class AdaScaleControl:
    """The host side of an AdaScale run over its optimizer's `AdaScaleLearningRate`.

    Create it after the checkpoint is restored (it reads the variables).

    Args:
        rate: the optimizer's `tfgap.adaptive.AdaScaleLearningRate`.
        stats: the run's `tfgap.advisor.NoiseStatistics` (host-side, updated
            after each call).
        base_batch: `b0`, `config.base_batch_size`.
        batch: `B`, `config.batch_size` (global; `set_batch` changes it).
        base_steps: `T0`, where the progress ends the run.
        every_steps: the gain is set at the steps that are multiples of it.
        step: the step the run starts at (after a restore).

    Attributes:
        gain: the gain of the last call (of the next one until it is set).
        progress: the progress after the last step, in `b0`-steps.
        note: a line to print about the restore, or `None`.

    Example (the graph's part, `rate.advance()` after each step, by hand):

    >>> from tfgap.adaptive import AdaScaleLearningRate
    >>> from tfgap.advisor import NoiseStatistics
    >>> rate, stats = AdaScaleLearningRate(0.1), NoiseStatistics(small_batch=16, big_batch=32)
    >>> control = AdaScaleControl(rate, stats, base_batch=8, batch=32, base_steps=10,
    ...                           every_steps=1)
    >>> control.begin_call(step=0, num_steps=3)      # nothing measured yet: gain 1
    3
    >>> for _ in range(3):
    ...     rate.advance()
    >>> control.end_call(3)
    [1.0, 2.0, 3.0]
    >>> stats.update(small_sq=3.0, big_sq=2.0)       # |G|^2 = 1, tr(Sigma) = 32: B_simple 32
    >>> control.begin_call(step=3, num_steps=100)    # gain (1 + 4) / (1 + 1): 3 steps to 10.5
    3
    >>> control.gain, control.reached
    (2.5, False)
    """

    def __init__(self, rate, stats, *, base_batch, batch, base_steps, every_steps, step=0):
        self.rate, self.stats = rate, stats
        self.base_batch, self.batch = base_batch, batch
        self.base_steps, self.every_steps = base_steps, max(1, int(every_steps))
        self.gain = _read(rate.gain)
        self.progress = _read(rate.progress)
        self._set_gain_now = False
        self.note = None
        if step and not self.progress:
            # Only a checkpoint without AdaScale's variables (resumed with resume_with_changes
            # from adaptive='off') restores no progress: start at the examples seen, in
            # b0-steps, with the gain set at once.
            self.progress = step * batch / base_batch
            rate.assign(progress=self.progress)
            self._set_gain_now = True
            self.note = (f"The checkpoint holds no AdaScale progress: it starts at the "
                         f"{step} steps of {batch} examples taken, {self.progress:g} steps of "
                         f"{base_batch}.")

    @property
    def reached(self):
        """Whether the progress has reached `T0`: the run is over."""
        return self.progress >= self.base_steps

    def set_batch(self, batch):
        """Sets `B` (`adaptive="batch"`, at an epoch start); a new `B` sets the gain at the next
        call, whatever its step."""
        if int(batch) != self.batch:
            self.batch = int(batch)
            self._set_gain_now = True

    def begin_call(self, step, num_steps):
        """Sets the gain if `step` is due; returns the steps to run (<= `num_steps`).

        The call is cut at the first step whose progress reaches `T0`: the
        smallest `n` with `progress + gain + ... + gain` (n additions in
        float64, as the graph makes them) `>= T0`.
        """
        if step % self.every_steps == 0 or self._set_gain_now:
            self.gain = adascale_gain(self.stats.b_simple, self.base_batch, self.batch)
            self.rate.assign(gain=self.gain)
            self._set_gain_now = False
        value, gain, steps = np.float64(self.progress), np.float64(self.gain), 0
        while steps < num_steps and value < self.base_steps:
            value, steps = value + gain, steps + 1
        return steps

    def end_call(self, num_steps):
        """The progress after each of the call's `num_steps` steps; reads the variable back.

        The steps before the last add the gain as the graph did; the last is
        the variable's value (which differs from the sum only when a loss-scaled
        step was skipped, and only the last step of a call can be).
        """
        values, value = [], np.float64(self.progress)
        for _ in range(num_steps):
            value = value + np.float64(self.gain)
            values.append(float(value))
        self.progress = _read(self.rate.progress)
        if values:
            values[-1] = self.progress
        return values

    def values(self):
        """`{"gain", "progress"}`: the logs' entries."""
        return {"gain": self.gain, "progress": self.progress}


def _read(variable):
    return float(keras.ops.convert_to_numpy(variable))
