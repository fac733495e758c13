"""Distribution strategies by name, and the worker's role in the cluster.

| name | what it builds |
|---|---|
| `"one_device"` | `OneDeviceStrategy` on the first GPU, else the CPU |
| `"mirrored"` | `MirroredStrategy` over all local GPUs, else all logical CPUs |
| `"multi_worker"` | `MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG` |
| `"tpu"` | `TPUStrategy` after `TPUClusterResolver`, `experimental_connect_to_cluster`, `initialize_tpu_system` |
| `"auto"` | `tpu` if a TPU is named, `multi_worker` if `TF_CONFIG` names more than one task, `mirrored` if there are several GPUs or logical CPUs, else `one_device` |

Strategies must be created before any other TensorFlow op runs (multi-worker
and TPU set up the runtime), and the logical CPU split must come before
TensorFlow initializes its devices: recipes call `split_logical_cpus` first
thing, then `make_strategy`.
"""

import json
import os

import tensorflow as tf

from tfgap.training.config import ConfigError, STRATEGIES


def split_logical_cpus(num):
    """Splits the host CPU into `num` logical devices (call before any TF op).

    Lets `MirroredStrategy` run with `num` replicas on a CPU-only machine.
    A no-op when `num <= 1` or when the split already exists.

    Args:
        num: number of logical CPUs.

    Raises:
        RuntimeError: when TensorFlow already initialized its devices with
            fewer logical CPUs.

    Example:

    >>> split_logical_cpus(0)  # nothing to do
    """
    num = int(num)
    if num <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < num:
            raise RuntimeError(
                f"Cannot split the CPU into {num} logical devices: TensorFlow already "
                f"initialized {have}. Call split_logical_cpus before any TensorFlow op."
            ) from None


def resolve_strategy_name(name, *, tpu=None, num_gpus=0, num_cpus=1, tf_config=None):
    """The concrete strategy name `make_strategy` builds for `name`.

    Pure logic (no TensorFlow), so the choice is testable on any machine.

    Args:
        name: one of `"auto"`, `"one_device"`, `"mirrored"`, `"multi_worker"`, `"tpu"`.
        tpu: the TPU name, if any.
        num_gpus: local GPUs.
        num_cpus: local logical CPUs.
        tf_config: the parsed `TF_CONFIG` dict, if any.

    Example:

    >>> resolve_strategy_name("auto", num_gpus=8)
    'mirrored'
    >>> resolve_strategy_name("auto", tf_config={"cluster": {"worker": ["a:1", "b:1"]}})
    'multi_worker'
    >>> resolve_strategy_name("auto", tpu="local")
    'tpu'
    """
    if name not in STRATEGIES:
        raise ConfigError(f"Expected `strategy` in {list(STRATEGIES)}. Received: strategy={name!r}")
    if name != "auto":
        return name
    if tpu:
        return "tpu"
    cluster = (tf_config or {}).get("cluster", {})
    if sum(len(tasks) for job, tasks in cluster.items() if job in ("chief", "worker")) > 1:
        return "multi_worker"
    if num_gpus > 1 or (num_gpus == 0 and num_cpus > 1):
        return "mirrored"
    return "one_device"


def make_strategy(name="auto", *, tpu=None):
    """Builds the `tf.distribute.Strategy` called `name` (see the module table).

    Args:
        name: a strategy name.
        tpu: TPU name or address for `TPUClusterResolver` (`"local"` on a TPU VM).

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> strategy = make_strategy("one_device")
    >>> strategy.num_replicas_in_sync
    1
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    # Multi-worker and TPU set up the runtime: decide on them before any call
    # that initializes TensorFlow's devices.
    early = resolve_strategy_name(name, tpu=tpu, tf_config=tf_config)
    if early in ("tpu", "multi_worker"):
        name = early
    else:
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        name = resolve_strategy_name(
            name, tpu=tpu, num_gpus=len(gpus), num_cpus=len(cpus), tf_config=tf_config
        )
    if name == "tpu":
        return make_tpu_strategy(tpu)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        devices = [d.name for d in (gpus or cpus)]
        if len(devices) == 1:
            return tf.distribute.MirroredStrategy(devices)
        cross = None if gpus else tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0])
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0].name)


def make_tpu_strategy(tpu):
    """Connects to a TPU system and returns a `TPUStrategy` over it.

    The real path: `TPUClusterResolver(tpu)`, `tf.config.experimental_connect_to_cluster`,
    `tf.tpu.experimental.initialize_tpu_system`, `tf.distribute.TPUStrategy`.
    The trainer then uses static shapes (`drop_remainder=True`) everywhere.
    """
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_tpu(strategy):
    """Whether `strategy` runs on TPUs (static shapes required)."""
    return isinstance(strategy, tf.distribute.TPUStrategy) or "TPU" in type(strategy).__name__


def task_info(strategy):
    """`(task_type, task_id, is_chief)` of this process in the cluster.

    Single-machine strategies are their own chief. In a multi-worker cluster,
    the chief is the `"chief"` task, or worker 0 when there is none.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or is_tpu(strategy):
        return None, None, True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return None, None, True
    cluster = resolver.cluster_spec().as_dict()
    if task_type == "chief":
        return task_type, task_id, True
    is_chief = task_type == "worker" and task_id == 0 and "chief" not in cluster
    return task_type, task_id, is_chief


def num_workers(strategy):
    """Number of worker processes (input pipelines) of `strategy`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or is_tpu(strategy):
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def broadcast_from_chief(strategy, value):
    """The chief's `value` (a number) on every worker: one collective, every worker calls it.

    The other workers' `value` is ignored. Single-process strategies return
    `value` itself without a collective. The chief's replicas each contribute
    `(value, 1)`, every other replica `(0, 0)`; the sum's ratio is the chief's
    value, whatever the number of replicas per worker.

    Example:

    >>> import tensorflow as tf
    >>> broadcast_from_chief(tf.distribute.get_strategy(), 48)
    48.0
    """
    if num_workers(strategy) == 1:
        return float(value)
    mine = (float(value), 1.0) if task_info(strategy)[2] else (0.0, 0.0)
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(mine, tf.float64))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    return float(total[0] / total[1])


def strategy_name(strategy):
    """The tfgap name of a strategy object (`"mirrored"`, ...), else its class name."""
    for name, cls in (("multi_worker", tf.distribute.MultiWorkerMirroredStrategy),
                      ("mirrored", tf.distribute.MirroredStrategy),
                      ("one_device", tf.distribute.OneDeviceStrategy)):
        if isinstance(strategy, cls):
            return name
    return "tpu" if is_tpu(strategy) else type(strategy).__name__
