"""Forward-and-backward time of one norm layer: GhostBatchNormalization against BN.

Times `d/d(inputs, gamma, beta) sum(norm(inputs, training=True) * w)` for
one layer alone, channels-last (`axis=-1`) and channels-first (`axis=1`),
in graph mode and under XLA, for `keras.layers.BatchNormalization` and
`tfgap.GhostBatchNormalization(virtual_batch_size=ghost)`, in interleaved
rounds; prints median wall and CPU times and their ratios to BN as a
Markdown table. The whole-network figures are in `gbn_step_time.py`; this
one isolates the layer, and covers channels-first, which TensorFlow's CPU
convolutions do not run.

Usage:

    python benchmarks/gbn_layer_time.py --batch=128 --size=16 --channels=32 --ghost=32
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=16, help="height and width")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--ghost", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5, help="calls timed per round")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import keras
    import tfgap

    def timed_call(layout, norm, jit):
        c, s = args.channels, args.size
        shape = (args.batch, s, s, c) if layout == "channels_last" else (args.batch, c, s, s)
        axis = -1 if layout == "channels_last" else 1
        layer = (keras.layers.BatchNormalization(axis=axis) if norm == "bn" else
                 tfgap.GhostBatchNormalization(virtual_batch_size=args.ghost, axis=axis))
        layer.build(shape)
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(size=shape).astype("float32"))
        w = tf.constant(rng.normal(size=shape).astype("float32"))

        @tf.function(jit_compile=jit)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) * w)
            grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
            return tf.add_n([tf.reduce_sum(g) for g in grads])

        return lambda: step(x).numpy()

    calls = {(layout, mode, norm): timed_call(layout, norm, mode == "xla")
             for layout in ("channels_last", "channels_first")
             for mode in ("graph", "xla") for norm in ("bn", "gbn")}
    for call in calls.values():
        call()
        call()
    keys = list(calls)
    times = {key: {"wall": [], "cpu": []} for key in keys}
    for r in range(args.rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                calls[key]()
            times[key]["wall"].append((time.perf_counter() - wall) / args.steps)
            times[key]["cpu"].append((time.process_time() - cpu) / args.steps)

    flags = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Command: python benchmarks/gbn_layer_time.py {flags}")
    print(f"TF {tf.__version__}, Keras {keras.__version__}; CPU ({os.cpu_count()} cores, "
          f"{platform.machine()}); {args.rounds} interleaved rounds x {args.steps} calls")
    print()
    print("| layout | mode | BN ms | GBN ms | GBN / BN | GBN / BN (CPU) |")
    print("|---|---|---:|---:|---:|---:|")
    for layout in ("channels_last", "channels_first"):
        for mode in ("graph", "xla"):
            bn, gbn = (times[(layout, mode, n)] for n in ("bn", "gbn"))
            med = statistics.median
            print(f"| {layout} | {mode} | {med(bn['wall']) * 1e3:.1f} | "
                  f"{med(gbn['wall']) * 1e3:.1f} | {med(gbn['wall']) / med(bn['wall']):.2f}x | "
                  f"{med(gbn['cpu']) / med(bn['cpu']):.2f}x |")


if __name__ == "__main__":
    main()
