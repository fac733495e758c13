"""Training-step time of GhostBatchNormalization against plain BN and tf-keras.

Times whole SGD training steps (`train_on_batch`: forward, backward, update)
of three workloads, each with three normalization layers:

- `block`: Conv2D -> norm -> ReLU -> Conv2D -> norm -> ReLU -> pooling ->
  Dense on 16x16x16 inputs (batch 512, ghost 32 by default);
- `resnet44`: `tfgap.models` ResNet-44 on CIFAR shapes (32x32x3, 10
  classes; batch 128, ghost 32);
- `resnet50`: `tfgap.models` ResNet-50 on ImageNet-like shapes (1000
  classes; a small batch and image size on CPU, set by the flags).

and the normalization layers

- `bn`: plain batch normalization (`keras.layers.BatchNormalization` in the
  block; `ghost_batch_size=0` in `tfgap.models`, which runs exactly
  `BatchNormalization`'s computation);
- `gbn`: `tfgap.GhostBatchNormalization(virtual_batch_size=ghost)`;
- `tf_keras_vbs`: tf-keras 2's `BatchNormalization(virtual_batch_size=ghost)`
  in the same architecture built with tf-keras (same layers, same parameter
  count, checked), when the `tf_keras` package is installed
  (`pip install tfgap[benchmark]`).

Every (layer, compile mode) of a workload is built and warmed up first, then
timed in interleaved rounds (the order rotates every round), so that machine
noise hits all of them alike. The table gives, per compile mode, the median
wall-clock step time, its ratio to plain BN in the same mode, and the ratio
of median CPU time (`time.process_time`, all threads of the process): on a
machine shared with other jobs, CPU time varies far less than wall time,
which also counts the time the process waits for a core. Per-round times go
to stderr.

`--backend` names the Keras backend (set as `KERAS_BACKEND` before Keras is
imported; one backend per run) and with it the compile modes: TensorFlow
runs graph mode (`tf.function`) and XLA (`jit_compile=True`), JAX runs
`jax.jit` (`jit_compile=True`, its only compiled mode), PyTorch runs eagerly.
The tf-keras rows exist only on TensorFlow.

Usage:

    python benchmarks/gbn_step_time.py                       # all three workloads
    python benchmarks/gbn_step_time.py --workloads=resnet44 --rounds=7
    python benchmarks/gbn_step_time.py --resnet50_batch=16 --resnet50_ghost=4 \\
        --resnet50_size=128
    python benchmarks/gbn_step_time.py --backend=jax          # GBN vs BN under jax.jit
"""

import argparse
import importlib
import importlib.util
import os
import platform
import statistics
import sys
import time

# Compile modes per Keras backend: name -> `jit_compile` of `Model.compile`.
MODES = {
    "tensorflow": {"graph": False, "xla": True},
    "jax": {"jit": True},
    "torch": {"eager": False},
}
WORKLOADS = ("block", "resnet44", "resnet50")
NORMS = ("bn", "gbn", "tf_keras_vbs")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="tensorflow", choices=sorted(MODES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {WORKLOADS}")
    parser.add_argument("--modes", default=None,
                        help="comma-separated compile modes (default: all of the backend's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps timed per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
    parser.add_argument("--block_batch", type=int, default=512)
    parser.add_argument("--block_ghost", type=int, default=32)
    parser.add_argument("--resnet44_batch", type=int, default=128)
    parser.add_argument("--resnet44_ghost", type=int, default=32)
    parser.add_argument("--resnet50_batch", type=int, default=16)
    parser.add_argument("--resnet50_ghost", type=int, default=4)
    parser.add_argument("--resnet50_size", type=int, default=128,
                        help="ResNet-50 image height and width (224 on ImageNet)")
    args = parser.parse_args(argv)
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; expected a subset of {list(WORKLOADS)}")
    modes = MODES[args.backend]
    args.modes = list(modes) if args.modes is None else [m for m in args.modes.split(",") if m]
    if set(args.modes) - set(modes):
        parser.error(f"unknown modes {args.modes}; the {args.backend} backend has "
                     f"{list(modes)}")
    return args


# --- The workloads, in Keras 3 and in tf-keras ---------------------------------

def workload_shapes(args, name):
    """(batch, ghost, input shape, classes) of one workload."""
    if name == "block":
        return args.block_batch, args.block_ghost, (16, 16, 16), 10
    if name == "resnet44":
        return args.resnet44_batch, args.resnet44_ghost, (32, 32, 3), 10
    size = args.resnet50_size
    return args.resnet50_batch, args.resnet50_ghost, (size, size, 3), 1000


def keras_model(name, norm, ghost, input_shape, classes):
    import keras
    import tfgap
    import tfgap.models

    if name == "block":
        def make_norm():
            if norm == "bn":
                return keras.layers.BatchNormalization()
            return tfgap.GhostBatchNormalization(virtual_batch_size=ghost)

        return keras.Sequential([
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False), make_norm(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False), make_norm(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes),
        ])
    return tfgap.models.build_model(name, num_classes=classes, input_shape=input_shape,
                                    ghost_batch_size=0 if norm == "bn" else ghost, seed=0)


def tf_keras_model(name, ghost, input_shape, classes):
    """The workload built with tf-keras and its `virtual_batch_size` BN.

    The same layers as `keras_model` (tfgap.models' ResNets: bias-free
    convolutions, explicit padding of the stride-2 3x3 convolutions, ResNet-44's
    zero-padding shortcuts, ResNet-50's projection shortcuts), epsilon 1e-5
    and momentum 0.9 as in `tfgap.models`.
    """
    import tensorflow as tf
    import tf_keras as tk

    layers = tk.layers
    # The block uses the layers' defaults; tfgap.models uses PyTorch's.
    momentum, epsilon = (0.99, 1e-3) if name == "block" else (0.9, 1e-5)

    def norm(x):
        return layers.BatchNormalization(
            virtual_batch_size=ghost, momentum=momentum, epsilon=epsilon)(x)

    def conv(x, filters, kernel, strides=1):
        if strides != 1 and kernel == 3:
            x = layers.ZeroPadding2D(1)(x)
            return layers.Conv2D(filters, 3, strides=strides, use_bias=False)(x)
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             use_bias=False)(x)

    inputs = tk.Input(input_shape)
    if name == "block":
        x = layers.ReLU()(norm(conv(inputs, 32, 3)))
        x = layers.ReLU()(norm(conv(x, 32, 3)))
    elif name == "resnet44":
        x = layers.ReLU()(norm(conv(inputs, 16, 3)))
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(7):
                strides = 2 if stage > 0 and block == 0 else 1
                y = layers.ReLU()(norm(conv(x, filters, 3, strides)))
                y = norm(conv(y, filters, 3))
                if strides != 1 or x.shape[-1] != filters:
                    extra = filters - x.shape[-1]
                    pads = [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]]
                    x = layers.Lambda(
                        lambda t, p=pads, s=strides: tf.pad(t[:, ::s, ::s, :], p))(x)
                x = layers.ReLU()(layers.Add()([x, y]))
    else:  # resnet50, v1.5 bottlenecks
        x = layers.ZeroPadding2D(3)(inputs)
        x = layers.ReLU()(norm(layers.Conv2D(64, 7, strides=2, use_bias=False)(x)))
        x = layers.MaxPooling2D(3, strides=2)(layers.ZeroPadding2D(1)(x))
        for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                y = layers.ReLU()(norm(conv(x, width, 1)))
                y = layers.ReLU()(norm(conv(y, width, 3, strides)))
                y = norm(conv(y, 4 * width, 1))
                if strides != 1 or x.shape[-1] != 4 * width:
                    x = norm(conv(x, 4 * width, 1, strides))
                x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return tk.Model(inputs, layers.Dense(classes)(x))


def compiled(model, library, jit):
    optimizer = library.optimizers.SGD(0.01, momentum=0.9)
    loss = library.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
    return model


# --- Timing ---------------------------------------------------------------------

def time_workload(args, name):
    """{(norm, mode): [seconds per step, one per round]} of one workload."""
    import numpy as np
    import keras

    batch, ghost, input_shape, classes = workload_shapes(args, name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch,) + input_shape).astype("float32")
    y = rng.integers(0, classes, batch).astype("int32")
    models, params = {}, {}
    for mode in args.modes:
        jit = MODES[args.backend][mode]
        for norm in ("bn", "gbn"):
            model = keras_model(name, norm, ghost, input_shape, classes)
            params[norm] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
            models[(norm, mode)] = compiled(model, keras, jit)
        if args.backend == "tensorflow" and have_tf_keras():
            import tf_keras

            model = tf_keras_model(name, ghost, input_shape, classes)
            params["tf_keras_vbs"] = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
            models[("tf_keras_vbs", mode)] = compiled(model, tf_keras, jit)
    if len(set(params.values())) != 1:
        raise RuntimeError(f"{name}: the variants differ in trainable parameters: {params}")
    for key, model in models.items():  # compile and warm up
        start = time.perf_counter()
        for _ in range(args.warmup + 1):
            model.train_on_batch(x, y)
        print(f"  {name} {key[0]} {key[1]}: compiled and warmed up in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    keys = list(models)
    times = {key: {"wall": [], "cpu": []} for key in keys}
    for r in range(args.rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                models[key].train_on_batch(x, y)  # returns numpy: the step has finished
            times[key]["wall"].append((time.perf_counter() - wall) / args.steps)
            times[key]["cpu"].append((time.process_time() - cpu) / args.steps)
        print(f"  {name} round {r + 1}: " + ", ".join(
            f"{n} {m} {t['wall'][-1] * 1e3:.0f}/{t['cpu'][-1] * 1e3:.0f} ms"
            for (n, m), t in times.items()), file=sys.stderr, flush=True)
    return times, params["bn"]


def backend_and_device(backend):
    """(framework name, its version, the device the steps ran on) of a backend."""
    cpu = f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return "TF", tf.__version__, gpus[0].name if gpus else cpu
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return "JAX", jax.__version__, cpu if device.platform == "cpu" else device.device_kind
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return "PyTorch", torch.__version__, gpu or cpu


def have_tf_keras():
    return importlib.util.find_spec("tf_keras") is not None


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != args.backend:
        raise RuntimeError(f"Keras was already imported with the {keras.backend.backend()} "
                           f"backend; run this script in a fresh process")
    started = time.perf_counter()
    results = {}
    for name in args.workloads:
        results[name] = time_workload(args, name)
        keras.backend.clear_session()

    framework, version, where = backend_and_device(args.backend)
    versions = f"{framework} {version}, Keras {keras.__version__}"
    if args.backend == "tensorflow":
        versions += ", tf-keras " + (importlib.import_module("tf_keras").__version__
                                     if have_tf_keras() else "absent")
    flags = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Command: python benchmarks/gbn_step_time.py {flags}")
    print(f"Backend {args.backend}; {versions}, Python {platform.python_version()}; {where}; "
          f"{args.rounds} interleaved rounds x {args.steps} steps; total "
          f"{time.perf_counter() - started:.0f} s")
    print()
    header = "| workload | layer |" + "".join(
        f" {mode}: ms | {mode}: / BN | {mode}: CPU / BN |" for mode in args.modes)
    print(header)
    print("|---|---|" + "---:|---:|---:|" * len(args.modes))
    for name, (times, params) in results.items():
        batch, ghost, shape, _ = workload_shapes(args, name)
        label = f"{name} ({batch}x{'x'.join(map(str, shape))}, ghost {ghost}, {params:,} params)"
        for norm in NORMS:
            if (norm, args.modes[0]) not in times:
                continue
            cells = []
            for mode in args.modes:
                wall, cpu = (statistics.median(times[(norm, mode)][k]) for k in ("wall", "cpu"))
                base_wall, base_cpu = (statistics.median(times[("bn", mode)][k])
                                       for k in ("wall", "cpu"))
                cells.append(f" {wall * 1e3:.0f} | {wall / base_wall:.2f}x | "
                             f"{cpu / base_cpu:.2f}x |")
            print(f"| {label} | {norm} |" + "".join(cells))

if __name__ == "__main__":
    main()
