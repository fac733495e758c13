"""Training-step time of GhostBatchNormalization against plain BN and tf-keras.

Times one SGD training step (forward, backward, update) of the same conv block

    Conv2D(filters, 3) -> norm -> ReLU -> Conv2D(filters, 3) -> norm -> ReLU
    -> GlobalAveragePooling2D -> Dense(10)

with three normalization layers, in one process, interleaved round by round
so that machine noise hits all of them alike:

- `bn`: `keras.layers.BatchNormalization` (Keras 3);
- `gbn`: `tfgap.GhostBatchNormalization(virtual_batch_size=ghost)`;
- `tf_keras_vbs`: tf-keras 2's `BatchNormalization(virtual_batch_size=ghost)`,
  when the `tf_keras` package is installed (`pip install tfgap[benchmark]`).

Each configuration is run with and without XLA (`jit_compile`). Prints the
median step time of each and its ratio to plain BN, as a Markdown table.

Usage:

    python benchmarks/gbn_step_time.py --batch=512 --ghost=32 --rounds=15
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


def keras_step(norm, args, jit):
    model = keras.Sequential([
        keras.Input((args.size, args.size, args.channels)),
        keras.layers.Conv2D(args.filters, 3, padding="same", use_bias=False), norm(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(args.filters, 3, padding="same", use_bias=False), norm(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10),
    ])
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def tf_keras_step(args, jit):
    import tf_keras

    def norm():
        return tf_keras.layers.BatchNormalization(virtual_batch_size=args.ghost)

    model = tf_keras.Sequential([
        tf_keras.Input((args.size, args.size, args.channels)),
        tf_keras.layers.Conv2D(args.filters, 3, padding="same", use_bias=False), norm(),
        tf_keras.layers.ReLU(),
        tf_keras.layers.Conv2D(args.filters, 3, padding="same", use_bias=False), norm(),
        tf_keras.layers.ReLU(),
        tf_keras.layers.GlobalAveragePooling2D(), tf_keras.layers.Dense(10),
    ])
    optimizer = tf_keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--ghost", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps timed per round")
    parser.add_argument("--no_xla", action="store_true", help="skip the XLA variants")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.size, args.size, args.channels)),
                    tf.float32)
    y = tf.constant(rng.integers(0, 10, args.batch), tf.int32)

    steps = {}
    for jit in ([False] if args.no_xla else [False, True]):
        tag = "xla" if jit else "no-xla"
        steps[("bn", tag)] = keras_step(
            lambda: keras.layers.BatchNormalization(), args, jit)
        steps[("gbn", tag)] = keras_step(
            lambda: tfgap.GhostBatchNormalization(virtual_batch_size=args.ghost), args, jit)
        try:
            steps[("tf_keras_vbs", tag)] = tf_keras_step(args, jit)
        except ImportError:
            pass
    for step in steps.values():  # compile and warm up
        for _ in range(3):
            step(x, y).numpy()

    times = {key: [] for key in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = step(x, y)
            loss.numpy()
            times[key].append((time.perf_counter() - start) / args.steps)

    device = tf.config.list_logical_devices("GPU")
    where = device[0].name if device else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    print(f"batch {args.batch}, ghost {args.ghost}, input {args.size}x{args.size}x"
          f"{args.channels}, {args.filters} filters; {args.rounds} rounds x {args.steps} "
          f"steps; TF {tf.__version__}, Keras {keras.__version__}; {where}")
    print("| layer | XLA | median step (ms) | ratio to plain BN |")
    print("|---|---|---|---|")
    for (name, tag), values in times.items():
        median = statistics.median(values)
        base = statistics.median(times[("bn", tag)])
        print(f"| {name} | {'yes' if tag == 'xla' else 'no'} | {median * 1e3:.2f} | "
              f"{median / base:.2f}x |")


if __name__ == "__main__":
    main()
