"""`adaptive="batch"`: the global batch chosen by goodput at each epoch start.

The runs are `test_noise_statistics.tiny`'s MLP on mock MNIST, here 128 training examples
(144, 16 held out), `b0 = 16`, ghost batches of 8, the candidates 16, 32, 48, 64. The step
times the controller records are pinned (`train(batch_step_time=...)`): wall times never
repeat, so with them neither the decisions of a resumed run nor those of a test could.

With the same time for every batch (`CONSTANT`) the decisions follow by hand from the rule
(`tfgap.adaptive.goodput`), for any measured noise scale `B_noise > 0`:

- epoch 2: only 16 is timed (its steps all recorded; the throughput model's median of the
  last 5 discounts the first, which traces); an untimed batch is predicted with no speed-up, so 16 is the goodput choice, and
  32 is explored: at 16's step time its goodput `32 / t * (B_n + 16) / (B_n + 32)` beats
  `16 / t` whenever `B_n > 0`;
- epoch 3: 16 and 32 are timed alike, the fitted time is flat, and goodput
  `B / t * (B_n + 16) / (B_n + B)` increases with `B`: 64, the largest;
- then 64 again.

With `batch_decision_steps=2` (`INTERVAL`) a decision is also due 2 steps into a segment while
a whole batch of the epoch is left, among the candidates no larger than the examples left
(`test_the_batch_changes_within_epochs_every_two_steps` derives the layout step by step).
"""

import hashlib
import itertools
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.test_adaptive import REGIME, StepLogs, without_seconds
from tests.training.test_noise_statistics import tiny
from tests.training.test_trainer import _weights
from tfgap import data
from tfgap.adaptive import adascale_gain
from tfgap.training import ConfigError, TrainConfig, inputs, plan_steps, rundir, train
from tfgap.training.batch_control import BatchControl
from tfgap.training.config import settings

NUM_TRAIN = 128
CANDIDATES = (16, 32, 48, 64)
CONSTANT = {batch: 0.01 for batch in CANDIDATES}  # seconds per step, whatever the batch
# Step times that grow faster than the batch: a larger batch never pays.
QUADRATIC = {batch: 0.01 * (batch / 16) ** 2 for batch in CANDIDATES}


def pinned(table):
    return lambda batch, seconds: table[batch]


def batch_run(tmp_path, **changes):
    """`tiny` with `adaptive="batch"` from 16 up to 64 and the AdaScale test regime."""
    return tiny(tmp_path, **{**REGIME, "adaptive": "batch", "noise_statistics": False,
                             "mock_examples": NUM_TRAIN + 16, "max_batch_size": 64,
                             "epochs": 3, **changes})


class ExampleLog:
    """Records the training examples each epoch's pipeline hands out (by content)."""

    def __init__(self):
        self.seen = {}  # pipeline seed -> example digests, in order

    def wrap(self, build_dataset):
        def wrapped(name, split, *args, **kwargs):
            ds = build_dataset(name, split, *args, **kwargs)
            if split != "train" or not kwargs.get("training"):
                return ds
            return self.noted(ds, kwargs["seed"])

        return wrapped

    def wrap_part(self, part):
        """`TrainInput._part`, its batches (what the steps read, in order, after a skip) noted
        under their epoch."""

        def wrapped(train_input, context, epoch, skip, replicas_here):
            return self.noted(part(train_input, context, epoch, skip, replicas_here), epoch)

        return wrapped

    def noted(self, ds, key):
        seen = self.seen.setdefault(key, [])

        def note(x):
            seen.extend(digest(row) for row in x.numpy())
            return x

        def fn(x, y):
            out = tf.py_function(note, [x], tf.float32)
            out.set_shape(x.shape)
            return out, y

        return ds.map(fn)


def digest(row):
    return hashlib.sha1(np.ascontiguousarray(row, np.float32).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def interval(tmp_path_factory):
    """The uninterrupted run with a decision every 2 steps at `CONSTANT` step times, with the
    examples each epoch's steps read (noted per epoch) and every step's logs."""
    log, steps = ExampleLog(), StepLogs()
    config = batch_run(tmp_path_factory.mktemp("interval"), batch_decision_steps=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs.TrainInput, "_part", log.wrap_part(inputs.TrainInput._part))
        result = train(config, batch_step_time=pinned(CONSTANT), callbacks=[steps])
    log.steps = steps.logs
    return config, result, log


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted run at `CONSTANT` step times, with the examples each epoch read and
    every step's logs."""
    log, steps = ExampleLog(), StepLogs()
    config = batch_run(tmp_path_factory.mktemp("full"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "build_dataset", log.wrap(data.build_dataset))
        result = train(config, batch_step_time=pinned(CONSTANT), callbacks=[steps])
    log.steps = steps.logs
    return config, result, log


def test_settings_are_validated_naming_what_was_received(tmp_path):
    assert settings()["max_batch_size"].default == 0 and settings()["max_batch_size"].cli
    config = batch_run(tmp_path, max_batch_size=0)
    assert config.largest_batch_size == 16  # 0: batch_size
    assert batch_run(tmp_path).largest_batch_size == 64
    cases = [
        (dict(adaptive="lr"), (r"Expected max_batch_size=0 unless adaptive='batch'.*"
                               r"adaptive='lr', max_batch_size=64")),
        (dict(max_batch_size=56), r"multiples of base_batch_size.*max_batch_size=56"),
        (dict(batch_size=24), r"multiples of base_batch_size.*batch_size=24"),
        (dict(batch_size=32, max_batch_size=16), (r"batch_size <= max_batch_size.*"
                                                  r"batch_size=32, max_batch_size=16")),
        (dict(lr_scaling="sqrt"), r"lr_scaling='none' with adaptive='batch'"),
        (dict(batch_size=8, max_batch_size=0), r"batch_size >= base_batch_size"),
    ]
    for changes, match in cases:
        with pytest.raises(ConfigError, match=match):
            batch_run(tmp_path, **changes)
    # A candidate the replica's split cannot take: 16 on one replica halves to 8, which a
    # ghost batch of 16 does not divide; named with the candidates, before any step.
    with pytest.raises(ConfigError, match=r"candidate batch.*\[16, 32, 48, 64\].*batch of 16"):
        train(batch_run(tmp_path / "ghost", ghost_batch_size=16, batch_size=32))
    with pytest.raises(ConfigError, match="max_batch_size <= the 128 training examples"):
        plan_steps(batch_run(tmp_path, max_batch_size=144), num_train_examples=128)


def test_several_workers_train_at_the_agreed_batch_and_log_why(tmp_path):
    # `agree` stands in for the chief's broadcast (tests/recipes/test_distributed.py runs two
    # real worker processes): this worker's own choice (16 timed alone: explore 32) is logged
    # as its best, the agreed batch is trained and laid out.
    config = batch_run(tmp_path)
    control = BatchControl(config, plan_steps(config, num_train_examples=NUM_TRAIN),
                           num_replicas=1, agree=lambda batch: 48)
    control.record(16, seconds=0.05, num_steps=5)
    assert control.begin(8, b_noise=100.0) == 48 == control.batch
    decision = control.controller.log[-1]
    assert (decision["batch"], decision["best"], decision["reason"]) == (48, 16, "chief")
    assert control.epochs == [[0, 16], [8, 48]] and control.steps_in_epoch(1) == 128 // 48
    control.agree = lambda batch: batch  # agreeing with itself: its own reason
    control.record(48, seconds=0.03, num_steps=3)
    control.begin(10, b_noise=100.0)
    assert control.controller.log[-1]["reason"] != "chief"


def test_a_resume_that_changes_what_shapes_an_adaptive_run_is_refused(tmp_path):
    config = batch_run(tmp_path)
    started = config.to_dict()
    assert rundir.differences(started, config.replace(steps_per_execution=4)) == {
        "steps_per_execution": (0, 4)}
    assert rundir.differences(started, config.replace(max_batch_size=32)) == {
        "max_batch_size": (64, 32)}
    plain = TrainConfig.from_dict({**started, "adaptive": "off", "max_batch_size": 0})
    assert rundir.differences(plain.to_dict(), plain.replace(steps_per_execution=4)) == {}


def test_the_batch_changes_at_epoch_starts_as_goodput_says(full):
    _, result, log = full
    history = result["history"]
    # The module docstring's sequence, given a measured noise scale at each decision.
    assert all(entry["b_simple"] > 0 for entry in history[:-1])
    batches = [entry["batch_size"] for entry in history]
    assert batches == [16, 32, 64, 64][:len(batches)] + [64] * (len(batches) - 4)
    decisions = result["batch_control"]["decisions"]
    assert [d["reason"] for d in decisions[:2]] == ["explore", "goodput"]
    assert [d["epoch"] for d in decisions] == list(range(1, len(history)))
    # Each epoch is floor(128 / B) steps (the last cut where the progress reaches T0 = 24).
    steps = np.diff([0] + [entry["step"] for entry in history]).tolist()
    assert steps[:-1] == [NUM_TRAIN // b for b in batches[:-1]]
    assert 1 <= steps[-1] <= NUM_TRAIN // batches[-1]
    assert result["batch_control"]["epochs"] == [
        [first, b] for first, b in zip([0, *np.cumsum(steps)[:-1].tolist()], batches)]
    assert history[-2]["progress"] < 24 <= history[-1]["progress"]
    # Each epoch's first gain is AdaScale's for its batch from the epoch before's B_simple;
    # every step logs the batch of its epoch.
    firsts = {first: b for first, b in result["batch_control"]["epochs"]}
    assert [s["batch_size"] for s in log.steps] == [
        b for b, n in zip(batches, steps) for _ in range(n)]
    for before, entry in itertools.pairwise(history):
        first = log.steps[before["step"]]  # the step after `before`'s last
        assert first["batch_size"] == firsts[before["step"]] == entry["batch_size"]
        assert first["gain"] == pytest.approx(
            adascale_gain(before["b_simple"], 16, entry["batch_size"]), rel=1e-12)
        assert 1 <= first["gain"] <= entry["batch_size"] / 16
    assert [entry["epochs_completed"] for entry in history[:-1]] == [
        float(i + 1) for i in range(len(history) - 1)]
    assert result["adascale"]["base_steps"] == 24 and result["global_step"] == sum(steps)


def test_every_example_is_read_once_per_epoch_across_batch_changes(full):
    config, result, log = full
    universe, _ = next(iter(data.build_dataset(
        "mnist", "train", batch_size=NUM_TRAIN, training=False, shuffle=False, mock_data=True,
        mock_examples=NUM_TRAIN + 16, validation_examples=16)))
    universe = {digest(row) for row in universe.numpy()}
    assert len(universe) == NUM_TRAIN  # the examples are told apart by their content
    history = result["history"]
    from tfgap.training.inputs import epoch_seed

    for epoch, entry in enumerate(history[:-1]):  # the whole epochs (the last was cut)
        seen = log.seen[epoch_seed(config.seed, epoch)]
        assert len(seen) == len(set(seen)) == NUM_TRAIN // entry["batch_size"] * entry[
            "batch_size"] == NUM_TRAIN, epoch
        assert set(seen) == universe


class Crash(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after step `step` (a crash); keeps the steps it saw."""

    def __init__(self, step):
        super().__init__()
        self.step, self.steps = step, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(logs["step"])
        if logs["step"] == self.step:
            raise KeyboardInterrupt


def assert_same_run(resumed, crashed, result, config):
    """The resumed run's history (but the wall times), decisions and weights are the
    uninterrupted one's."""
    assert [without_seconds(e) for e in resumed["history"]] == [
        without_seconds(e) for e in result["history"]]
    assert resumed["batch_control"] == result["batch_control"]
    a, b = _weights(crashed.model_dir), _weights(config.model_dir)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_crash_and_resume_gives_the_uninterrupted_history_and_weights(tmp_path, full):
    config, result, _ = full
    crashed = config.replace(model_dir=str(tmp_path / "crashed"), checkpoint_every_steps=5,
                             checkpoint_every_seconds=1e6)
    with pytest.raises(KeyboardInterrupt):  # in the epoch at 32 (steps 9-12); checkpoint at 10
        train(crashed, callbacks=[Crash(11)], batch_step_time=pinned(CONSTANT))
    resumed = train(crashed, batch_step_time=pinned(CONSTANT))
    assert resumed["resumed_from_step"] == 10
    assert_same_run(resumed, crashed, result, config)
    for change, name in ((dict(max_batch_size=32), "max_batch_size"),
                         (dict(steps_per_execution=2), "steps_per_execution"),
                         (dict(adaptive="lr", max_batch_size=0), "adaptive")):
        with pytest.raises(ConfigError, match=rf"{name}: "):
            train(crashed.replace(**change))


def test_at_max_equal_to_the_base_batch_it_is_the_lr_run_bit_for_bit(tmp_path):
    lr = train(tiny(tmp_path / "lr", **{**REGIME, "adaptive": "lr", "noise_statistics": False,
                                        "epochs": 2}))
    batch = train(batch_run(tmp_path / "batch", max_batch_size=16, epochs=2,
                            mock_examples=80))
    assert batch["global_step"] == lr["global_step"] == 8
    for a, b in zip(lr["history"], batch["history"], strict=True):
        assert set(b) - set(a) == {"batch_size"} and b["batch_size"] == 16
        assert without_seconds(a) == {k: b[k] for k in without_seconds(a)}
    assert batch["distance_record"] == lr["distance_record"]
    assert batch["adascale"] == lr["adascale"]
    a, b = _weights(tmp_path / "lr" / "run"), _weights(tmp_path / "batch" / "run")
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [d["batch"] for d in batch["batch_control"]["decisions"]] == [16]


def test_mirrored_decides_as_one_device_and_a_costly_batch_is_left(tmp_path, two_cpus, full):
    # Two replicas of 8..32 examples (ghost batches of 8): the same rule, the same sequence.
    _, one, _ = full
    two = train(batch_run(tmp_path / "two", strategy="mirrored", epochs=2), strategy=two_cpus,
                batch_step_time=pinned(CONSTANT))
    assert all(entry["b_simple"] > 0 for entry in two["history"][:-1])
    assert [e["batch_size"] for e in two["history"]][:3] == [16, 32, 64]
    assert [d["reason"] for d in two["batch_control"]["decisions"]][:2] == [
        d["reason"] for d in one["batch_control"]["decisions"]][:2]
    # QUADRATIC: 32 is explored (an untimed batch might scale), timed at 4x the step time of
    # 16, so goodput 32 / 0.04 * E(32) < 16 / 0.01: back to 16 for good.
    costly = train(batch_run(tmp_path / "costly", epochs=2), batch_step_time=pinned(QUADRATIC))
    batches = [e["batch_size"] for e in costly["history"]]
    assert batches[:2] == [16, 32] and set(batches[2:]) == {16}
    assert not math.isnan(costly["history"][0]["b_simple"])


# -- batch_decision_steps: decisions within epochs ---------------------------------------------

# The layout of the `interval` run, derived by hand (128 examples, b0 = 16, CONSTANT times; a
# batch is measured after 3 steps; `[first step, batch, epoch, offset]`):
#   step 2: 16 has 2 timings, no batch is measured: the smallest, 16 ("no_timings");
#   step 4: 16 alone measured, so an untimed batch is predicted with no speed-up; the noise
#       scale is not measured yet at this step (its estimate is not positive: asserted below),
#       so E(B) = 16 / B and 32 could at best tie with 16: stay at 16 ("goodput");
#   step 6: the same with B_noise > 0: 32 could win, explored; 128 - 96 = 32 examples left
#       (32 fits): 1 step at 32, then fewer than 32 are left: epoch 0 ends at step 7;
#   step 7: epoch 1; 32 has 1 timing (unmeasured): explored again, 2 steps;
#   step 9: 16 and 32 timed alike, the fitted time is flat: goodput grows with B: 64 (the 64
#       examples left allow it), 1 step, the epoch's end;
#   step 10, 12: each later epoch is 2 steps at 64 (a decision 2 steps in is the epoch's end).
INTERVAL_SEGMENTS = [[0, 16, 0, 0], [2, 16, 0, 32], [4, 16, 0, 64], [6, 32, 0, 96],
                     [7, 32, 1, 0], [9, 64, 1, 64], [10, 64, 2, 0], [12, 64, 3, 0]]
INTERVAL_REASONS = ["no_timings", "goodput", "explore", "explore", "goodput", "goodput",
                    "goodput"]


def test_the_batch_changes_within_epochs_every_two_steps(interval):
    _, result, log = interval
    control = result["batch_control"]
    decisions = control["decisions"]
    # The noise scale each decision saw, as the derivation above takes it.
    assert decisions[1]["b_noise"] is None and all(d["b_noise"] > 0 for d in decisions[2:])
    segments = control["segments"]
    assert segments == INTERVAL_SEGMENTS[:len(segments)] + [
        [10 + 2 * i, 64, 2 + i, 0] for i in range(len(segments) - len(INTERVAL_SEGMENTS))]
    assert control["decision_steps"] == 2
    assert [d["reason"] for d in decisions] == INTERVAL_REASONS[:len(decisions)] + [
        "goodput"] * (len(decisions) - len(INTERVAL_REASONS))
    assert [[d["step"], d["batch"], d["epoch"], d["segment"]] for d in decisions] == [
        [first, batch, epoch, index] for index, (first, batch, epoch, _) in
        enumerate(segments) if index]
    assert control["epochs"] == [[0, 16], [7, 32], [10, 64], [12, 64]][:len(control["epochs"])]
    # The epochs end where fewer than the batch in force are left (every example read here);
    # the run where the progress reaches T0 = 24 (within the fourth epoch).
    history = result["history"]
    assert [entry["step"] for entry in history[:-1]] == [7, 10, 12]
    assert [entry["epochs_completed"] for entry in history[:-1]] == [1.0, 2.0, 3.0]
    assert history[-2]["progress"] < 24 <= history[-1]["progress"]
    assert result["global_step"] == history[-1]["step"] == 13
    assert result["epochs_completed"] == 3.5  # 1 step of the 2 at 64
    # Every step logs the batch of its segment; each segment's first gain is AdaScale's for
    # its batch from the noise scale of its decision.
    ends = [first for first, *_ in segments[1:]] + [result["global_step"]]
    assert [s["batch_size"] for s in log.steps] == [
        batch for (first, batch, *_), end in zip(segments, ends) for _ in range(first, end)]
    for decision in decisions[2:]:
        first = log.steps[decision["step"]]
        assert first["gain"] == pytest.approx(
            adascale_gain(decision["b_noise"], 16, decision["batch"]), rel=1e-12)


def test_every_example_is_read_once_per_epoch_across_changes_within_it(interval):
    config, result, log = interval
    segments = result["batch_control"]["segments"]
    for epoch in range(len(result["history"]) - 1):  # the whole epochs (the last was cut)
        # The epoch's permutation, built here at b0 from the data library.
        permutation = [digest(row) for x, _ in data.build_dataset(
            "mnist", "train", batch_size=16, training=True,
            seed=inputs.epoch_seed(config.seed, epoch), repeat=True, drop_remainder=True,
            **inputs.data_kwargs(config)).take(NUM_TRAIN // 16) for row in x.numpy()]
        assert len(set(permutation)) == NUM_TRAIN
        seen = log.seen[epoch]
        read = sum(batch * (end - first) for (first, batch, e, _), end in zip(
            segments, [s[0] for s in segments[1:]]) if e == epoch)
        last_batch = [batch for _, batch, e, _ in segments if e == epoch][-1]
        assert len(seen) == len(set(seen)) == read, epoch  # no example twice
        assert seen == permutation[:read], epoch  # in the permutation's order, none skipped
        assert NUM_TRAIN - read < last_batch  # only a tail smaller than the batch is left


def test_crashes_within_segments_then_resumes_give_the_uninterrupted_run(tmp_path, interval):
    config, result, _ = interval
    crashed = config.replace(model_dir=str(tmp_path / "crashed"), checkpoint_every_steps=4,
                             checkpoint_every_seconds=1e6)
    # Checkpoints at steps 4 (the end of the segment [2, 16, 0, 32]: the decision at 4 is not
    # made yet) and 8 (within [7, 32, 1, 0], at example 32 of epoch 1).
    for crash, resumed_from in ((5, 0), (9, 4)):
        callback = Crash(crash)
        with pytest.raises(KeyboardInterrupt):
            train(crashed, callbacks=[callback], batch_step_time=pinned(CONSTANT))
        assert callback.steps == list(range(resumed_from + 1, crash + 1))
    resumed = train(crashed, batch_step_time=pinned(CONSTANT))
    assert resumed["resumed_from_step"] == 8
    assert_same_run(resumed, crashed, result, config)
    with pytest.raises(ConfigError, match=r"batch_decision_steps: 2 -> 4"):
        train(crashed.replace(batch_decision_steps=4))


def test_a_decision_within_an_epoch_fits_the_examples_left(tmp_path):
    # Segments of 5 steps at 16: the decision at step 5 has 128 - 80 = 48 examples left. 16 and
    # 32 timed alike (a flat fit) and B_noise > 0: goodput grows with B, 64 the best of all;
    # 48 of those that fit. One step at 48 reads the epoch's last 48; epoch 1 starts at 64.
    config = batch_run(tmp_path, batch_decision_steps=5)
    control = BatchControl(config, plan_steps(config, num_train_examples=NUM_TRAIN),
                           num_replicas=1)
    for batch in (32, 16):
        control.record(batch, seconds=0.03, num_steps=3)
    assert control.segment_end(0) == 5 and control.epoch_of(5) == (0, 5)
    assert control.steps_in_epoch(0) == 8  # if 16 stays
    assert control.begin(3, b_noise=100.0) == 16 and len(control.segments) == 1  # not due
    with pytest.raises(ValueError, match="step up to 5.*step=6"):
        control.begin(6, b_noise=100.0)
    assert control.begin(5, b_noise=100.0) == 48
    decision = control.controller.log[-1]
    assert [row["batch"] for row in decision["candidates"]] == [16, 32, 48]
    assert (decision["epoch"], decision["segment"], decision["best"]) == (0, 1, 48)
    assert control.segments == [[0, 16, 0, 0], [5, 48, 0, 80]]
    assert control.read_position(5) == (48, 80, 1) and control.segment_end(5) == 6
    assert control.steps_in_epoch(0) == 6 and control.epoch_of(6) == (1, 0)
    assert control.epochs_completed(5) == 80 / 128 and control.epochs_completed(6) == 1.0
    assert control.begin(6, b_noise=100.0) == 64  # an epoch start: every candidate fits
    assert control.epochs == [[0, 16], [6, 64]] and control.batch_of(0) == 16
    # The checkpoint's state, and one written before segments ({"epochs": ...}).
    control.stash()
    other = BatchControl(config, plan_steps(config, num_train_examples=NUM_TRAIN),
                         num_replicas=1)
    other.variable.assign(control.variable)
    other.unstash(7)
    assert other.segments == control.segments and other.summary() == control.summary()
    state = json.loads(control.variable.numpy())
    other.variable.assign(json.dumps({"epochs": [[0, 16], [8, 32]],
                                      "controller": state["controller"]}))
    other.unstash(8)  # at an epoch's start (a checkpoint before segments read with 0)
    assert other.segments == [[0, 16, 0, 0], [8, 32, 1, 0]]
    # Within an epoch the two ways of reading it cannot take over from each other (with
    # resume_with_changes); at an epoch's end they can, and another interval within an epoch.
    every_epoch = BatchControl(config.replace(batch_decision_steps=0),
                               plan_steps(config, num_train_examples=NUM_TRAIN), num_replicas=1)
    every_epoch.variable.assign(control.variable)
    with pytest.raises(ConfigError, match=(r"steps > 0 .*step 7, within epoch 1, "
                                           r".*batch_decision_steps=5.*"
                                           r"Received: batch_decision_steps=0")):
        every_epoch.unstash(7)
    every_epoch.unstash(6)
    assert every_epoch.segments == control.segments
    every_epoch.variable.assign(json.dumps({"segments": [[0, 16, 0, 0]],
                                            "controller": state["controller"]}))
    with pytest.raises(ConfigError, match=r"batch_decision_steps=0 .* step 3, within epoch 0"):
        control.variable.assign(every_epoch.variable)
        control.unstash(3)
    for steps in (2, 5):
        other = BatchControl(config.replace(batch_decision_steps=steps),
                             plan_steps(config, num_train_examples=NUM_TRAIN), num_replicas=1)
        other.variable.assign(json.dumps({"segments": [[0, 16, 0, 0]], "decision_steps": 5,
                                          "controller": state["controller"]}))
        other.unstash(3)


def test_the_decision_interval_is_validated_naming_what_was_received(tmp_path):
    declared = settings()["batch_decision_steps"]
    assert declared.default == 0 and declared.cli and not declared.may_change_on_resume
    assert batch_run(tmp_path, batch_decision_steps=3).batch_decision_steps == 3
    cases = [
        (dict(batch_decision_steps=-1), r"batch_decision_steps.*>= 0.*-1"),
        (dict(adaptive="lr", max_batch_size=0, batch_decision_steps=2),
         (r"Expected batch_decision_steps=0 unless adaptive='batch'.*adaptive='lr', "
          r"batch_decision_steps=2")),
        (dict(batch_decision_steps=6, steps_per_execution=4),
         r"multiple of steps_per_execution.*batch_decision_steps=6, steps_per_execution=4"),
    ]
    for changes, match in cases:
        with pytest.raises(ConfigError, match=match):
            batch_run(tmp_path, **changes)
    assert batch_run(tmp_path, batch_decision_steps=8, steps_per_execution=4)
    started = batch_run(tmp_path).to_dict()
    assert rundir.differences(started, batch_run(tmp_path, batch_decision_steps=2)) == {
        "batch_decision_steps": (0, 2)}


def test_two_replicas_read_each_example_once_per_epoch_across_changes(tmp_path, two_cpus):
    # One input pipeline, 2 replicas: a step takes 2 consecutive per-replica batches of it, so
    # the pipeline's batches of 8 (b0 / 2), joined into B / 2, are read in its order.
    log = ExampleLog()
    config = batch_run(tmp_path, strategy="mirrored", batch_decision_steps=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs.TrainInput, "_part", log.wrap_part(inputs.TrainInput._part))
        result = train(config, strategy=two_cpus, batch_step_time=pinned(CONSTANT))
    segments = result["batch_control"]["segments"]
    assert any(offset and batch > 16 for _, batch, _, offset in segments)  # changes within
    ends = [s[0] for s in segments[1:]]
    for epoch in range(len(result["history"]) - 1):
        permutation = [digest(row) for x, _ in data.build_dataset(
            "mnist", "train", batch_size=8, training=True,
            seed=inputs.epoch_seed(config.seed, epoch), repeat=True, drop_remainder=True,
            **inputs.data_kwargs(config)).take(NUM_TRAIN // 8) for row in x.numpy()]
        read = sum(batch * (end - first) for (first, batch, e, _), end in zip(segments, ends)
                   if e == epoch)
        assert log.seen[epoch] == permutation[:read] and len(set(permutation[:read])) == read
        assert NUM_TRAIN - read < [b for _, b, e, _ in segments if e == epoch][-1]
