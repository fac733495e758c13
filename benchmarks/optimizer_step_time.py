"""Training-step time of LARS against SGD with momentum, and of SAM against a plain step.

Times full training steps (forward, backward, update) of ResNet-44 on
CIFAR-shaped inputs (`tfgap.models.build_model("resnet44", ...)`), four
configurations in one process, interleaved round by round so that machine
noise hits all of them alike:

- `sgd`: `keras.optimizers.SGD(momentum=0.9)`, one step = `tape.gradient` +
  `optimizer.apply`;
- `lars`: the same step with `tfgap.LARS(momentum=0.9, weight_decay=5e-4)`;
- `plain`: `model.train_step` of the compiled ResNet-44 (SGD momentum), what
  `model.fit` runs;
- `sam`: `tfgap.SAM(resnet44).train_step`, the same optimizer (two passes).

Prints the median step time of each, the ratios LARS / SGD (target <= 1.2)
and SAM / plain (target <= 2.2), as a Markdown table.

Usage:

    python benchmarks/optimizer_step_time.py --batch=128 --rounds=25 --steps=1
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

TARGETS = {"lars": ("sgd", 1.2), "sam": ("plain", 2.2)}


def resnet44(args):
    return tfgap.models.build_model("resnet44", num_classes=10, input_shape=(32, 32, 3),
                                    ghost_batch_size=args.ghost, seed=0)


def loss_fn():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def optimizer_step(optimizer, args):
    model = resnet44(args)
    optimizer.build(model.trainable_variables)
    loss_object = loss_fn()

    @tf.function(jit_compile=args.xla)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_object(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def train_step(wrap, args):
    model = resnet44(args)
    if wrap:
        model = tfgap.SAM(model, rho=0.05)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=loss_fn())

    @tf.function(jit_compile=args.xla)
    def step(x, y):
        return model.train_step((x, y))["loss"]

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--ghost", type=int, default=0, help="ghost batch size, 0 = plain BN")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1, help="steps timed per round")
    parser.add_argument("--xla", action="store_true", help="compile the steps with XLA")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, 32, 32, 3)), tf.float32)
    y = tf.constant(rng.integers(0, 10, args.batch), tf.int32)

    steps = {
        "sgd": optimizer_step(keras.optimizers.SGD(0.1, momentum=0.9), args),
        "lars": optimizer_step(tfgap.LARS(0.1, momentum=0.9, weight_decay=5e-4), args),
        "plain": train_step(False, args),
        "sam": train_step(True, args),
    }
    for step in steps.values():  # trace, compile and warm up
        for _ in range(2):
            float(step(x, y))

    times = {key: [] for key in steps}
    start_all = time.perf_counter()
    for _ in range(args.rounds):
        for key, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = step(x, y)
            float(loss)
            times[key].append((time.perf_counter() - start) / args.steps)
    elapsed = time.perf_counter() - start_all

    device = tf.config.list_logical_devices("GPU")
    where = device[0].name if device else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    print(f"ResNet-44, batch {args.batch}, ghost {args.ghost}, XLA {args.xla}; "
          f"{args.rounds} rounds x {args.steps} steps ({elapsed:.0f} s timed); "
          f"TF {tf.__version__}, Keras {keras.__version__}; {where}")
    print("| step | median (ms) | min (ms) | max (ms) | ratio | target |")
    print("|---|---|---|---|---|---|")
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key, values in times.items():
        base, target = TARGETS.get(key, (key, None))
        ratio = medians[key] / medians[base]
        print(f"| {key} | {medians[key] * 1e3:.1f} | {min(values) * 1e3:.1f} | "
              f"{max(values) * 1e3:.1f} | {ratio:.2f}x {key}/{base} | "
              f"{'' if target is None else f'<= {target}x'} |")


if __name__ == "__main__":
    main()
