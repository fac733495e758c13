"""Training-step time with `noise_statistics` and `adaptive` against off (target: <= 3% more).

Times the trainer's own step function (`tfgap.training.step_functions.
make_train_step`, several steps per call as the trainer runs them) on the
MNIST-1D 1-D CNN (`cnn1d`, 40-sample signals, 10 classes) at batch 512, SGD
with momentum 0.9, in one process: the step with the statistics off (the
plain step) and on (one replica: the two half-batch passes and the two
squared norms; several replicas: one extra all-reduce) interleaved round by
round, so that machine noise hits both alike. The host-side moving average
(`tfgap.advisor.NoiseStatistics.update`, once per step on the call's rows) is
timed with the "on" step. The third step, "adascale", is the trainer's
`adaptive="lr"` step: the "on" step with the rate `gain * schedule(progress)`
(`tfgap.adaptive.AdaScaleLearningRate`, the progress advanced in the graph)
and the host's `tfgap.training.adascale.AdaScaleControl` setting the gain
before each call and reading the progress after it. The fourth, "adabatch",
adds `adaptive="batch"`'s host work to "adascale": the call's step times
recorded into a `tfgap.adaptive.goodput.BatchSizeController` (candidates a
quarter of the batch up to the batch, as the trainer's `BatchControl`
records them) and a decision every 8 calls (an epoch's worth; the decided
batch is not acted on: the step's batch stays, so only the control's cost
is timed).

Prints the median time per step of each, the ratio on / off and its
bootstrap interval over rounds, as a Markdown table.

Usage:

    python benchmarks/noise_statistics_overhead.py --batch=512 --rounds=30 --steps=10
    python benchmarks/noise_statistics_overhead.py --ghost=32      # ghost batches of 32
    python benchmarks/noise_statistics_overhead.py --logical_cpus=2  # MirroredStrategy
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import tfgap  # noqa: E402
from tfgap.adaptive import AdaScaleLearningRate  # noqa: E402
from tfgap.adaptive.goodput import (  # noqa: E402
    BatchSizeController, ThroughputModel, candidate_batches)
from tfgap.advisor import NoiseStatistics  # noqa: E402
from tfgap.training import split_logical_cpus, step_functions  # noqa: E402
from tfgap.training.adascale import AdaScaleControl  # noqa: E402

TARGET = 1.03


def build(strategy, args, mode):
    """One step function and its host side: `mode` "off", "on" (noise statistics),
    "adascale", "adabatch"."""
    noise_statistics = mode != "off"
    with strategy.scope():
        model = tfgap.models.build_model("cnn1d", num_classes=10, input_shape=(40,),
                                         ghost_batch_size=args.ghost, seed=0)
        adascale = mode in ("adascale", "adabatch")
        rate = AdaScaleLearningRate(0.05) if adascale else 0.05
        optimizer = keras.optimizers.SGD(rate, momentum=0.9)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64)
    train_steps = step_functions.make_train_step(
        strategy, model, optimizer, step, global_batch_size=args.batch,
        jit_compile=args.xla, noise_statistics=noise_statistics,
        adascale=rate if adascale else None)
    replicas = strategy.num_replicas_in_sync
    small = args.batch // replicas if replicas > 1 else args.batch // 2
    stats = NoiseStatistics(small, args.batch) if noise_statistics else None
    # A base batch of a quarter of B and a T0 no run here reaches: the gain is set before
    # every call (every_steps=1) and the progress read after it, as in the trainer.
    control = (AdaScaleControl(rate, stats, base_batch=args.batch // 4, batch=args.batch,
                               base_steps=1e12, every_steps=1) if adascale else None)
    controller = (BatchSizeController(
        args.batch // 4, candidate_batches(args.batch // 4, args.batch),
        initial_batch=args.batch, throughput_model=ThroughputModel(skip_after_switch=0))
        if mode == "adabatch" else None)
    calls_made = [0]

    def call(iterator):
        steps = args.steps
        if control is not None:
            steps = control.begin_call(int(step.numpy()), steps)
        start = time.perf_counter()
        rows = train_steps(iterator, tf.constant(steps, tf.int32)).numpy()
        if controller is not None:  # as BatchControl.record: each step at the call's mean
            per_step = (time.perf_counter() - start) / len(rows)
            for _ in range(len(rows)):
                controller.record(args.batch, per_step)
            calls_made[0] += 1
            if calls_made[0] % 8 == 0:
                controller.decide(int(step.numpy()), stats.b_simple)
        if stats is not None:
            for row in rows.astype("float64").tolist():
                stats.update(row[5], row[6])
        if control is not None:
            control.end_call(len(rows))
        return rows

    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--ghost", type=int, default=0, help="ghost batch size, 0 = plain BN")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="steps per call (timed together)")
    parser.add_argument("--xla", action="store_true", help="compile the passes with XLA")
    parser.add_argument("--logical_cpus", type=int, default=0,
                        help="split the CPU and train with MirroredStrategy over them")
    args = parser.parse_args()

    if args.logical_cpus > 1:
        split_logical_cpus(args.logical_cpus)
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")])
    else:
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 40)).astype("float32")
    y = rng.integers(0, 10, args.batch).astype("int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    calls = {key: build(strategy, args, key) for key in ("off", "on", "adascale", "adabatch")}
    iterators = {key: iter(strategy.experimental_distribute_dataset(dataset)) for key in calls}
    for key, call in calls.items():  # trace and warm up
        for _ in range(2):
            call(iterators[key])

    times = {key: [] for key in calls}
    start_all = time.perf_counter()
    for _ in range(args.rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            call(iterators[key])
            times[key].append((time.perf_counter() - start) / args.steps)
    elapsed = time.perf_counter() - start_all

    device = tf.config.list_logical_devices("GPU")
    where = device[0].name if device else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    print(f"cnn1d on MNIST-1D shapes, batch {args.batch}, ghost {args.ghost}, XLA {args.xla}, "
          f"{strategy.num_replicas_in_sync} replica(s); {args.rounds} rounds x {args.steps} "
          f"steps ({elapsed:.0f} s timed); TF {tf.__version__}, Keras {keras.__version__}; "
          f"{where}")
    medians = {key: statistics.median(values) for key, values in times.items()}
    print("| step | median (ms) | min (ms) | max (ms) |")
    print("|---|---|---|---|")
    for key, values in times.items():
        print(f"| {key} | {1e3 * medians[key]:.3f} | {1e3 * min(values):.3f} | "
              f"{1e3 * max(values):.3f} |")
    off = np.array(times["off"])
    for key in ("on", "adascale", "adabatch"):
        ratio = medians[key] / medians["off"]
        boot = np.random.default_rng(1)
        arm = np.array(times[key])
        ratios = [np.median(arm[i]) / np.median(off[i])
                  for i in (boot.integers(0, len(arm), len(arm)) for _ in range(2000))]
        low, high = np.percentile(ratios, [5, 95])
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"\n{key} / off = {ratio:.3f} (90% bootstrap interval over rounds "
              f"{low:.3f}-{high:.3f}); {verdict} the target <= {TARGET}")


if __name__ == "__main__":
    main()
