"""Atomic SavedModel export with a raw-image `serving_default` signature.

The exported signature takes what a client has, raw examples as stored
(`uint8` images for MNIST, CIFAR and ImageNet) in a batch of any size, applies
exactly the evaluation preprocessing of training (`tfgap.data.preprocess_for_eval`)
and returns `logits` and `probabilities` (softmax). It uses the moving
statistics of the normalization layers: no ghost batches at inference.

The SavedModel holds only TensorFlow graphs, so it loads with
`tf.saved_model.load` where tfgap is not installed. The resolved training
config is written beside it as `<export_dir>/tfgap_config.json` (`null`
without a config), which also marks the directory as a tfgap export.

An export never removes anything it did not write: `check_export_path` refuses
a file, a directory that is not an earlier tfgap export (or one holding a
foreign file) and any path equal to, inside or containing a protected path
(the run's `model_dir`); an empty directory is used. The model is written to
`.<name>.tmp-<pid>-<hex>` beside the target, then renamed into place; an
earlier export is swapped out atomically (Linux `renameat2(RENAME_EXCHANGE)`),
so a reader always finds the old or the new model. Without the exchange, the
old model is first moved to `.<name>.old-<pid>-<hex>`, which the next export
(or check) moves back if the target is missing; leftovers of killed exports
are removed by the next export to the same path.
"""

import contextlib
import ctypes
import errno
import json
import os
import platform
import re
import shutil
import sys
import uuid

import tensorflow as tf

from tfgap import data
from tfgap.training.config import ConfigError

CONFIG_FILENAME = "tfgap_config.json"
# Everything `tf.saved_model.save` and this module write into an export.
_EXPORT_ENTRIES = frozenset(
    {"saved_model.pb", "fingerprint.pb", "variables", "assets", CONFIG_FILENAME})
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}


class ExportPathError(ConfigError):
    """An `export_dir` that an export would have to overwrite or remove user data at."""


class _Serving(tf.Module):
    def __init__(self, model, dataset):
        super().__init__()
        self.model = model
        spec = data.get_spec(dataset)
        self._dataset = dataset
        raw_shape = list(spec.raw_shape)
        if dataset == "imagenet2012":  # any height and width: resized and centre-cropped
            raw_shape = [None, None, raw_shape[-1]]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, *raw_shape], tf.as_dtype(spec.raw_dtype), name="images")
            ]
        )
        def serve(images):
            inputs = data.preprocess_for_eval(self._dataset, images)
            logits = tf.cast(self.model(inputs, training=False), tf.float32)
            return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

        self.serve = serve


def check_export_path(export_dir, *, protected=()):
    """Checks that exporting to `export_dir` can only replace an earlier tfgap export.

    Safe are a new path, an empty directory and an earlier export: a directory
    with `saved_model.pb`, `tfgap_config.json` and nothing else than
    `fingerprint.pb`, `variables/` and `assets/`. If `export_dir` is missing
    because an export died between its two renames (no atomic exchange), the
    earlier export is first moved back: the one change this check makes.

    Args:
        export_dir: the directory an export will write.
        protected: paths that must not be, hold or be held by `export_dir`
            (the run's `model_dir`); they need not exist.

    Returns:
        The absolute `export_dir`.

    Raises:
        ExportPathError: `export_dir` is not safe; nothing was touched.

    Example:

    ```python
    check_export_path("savedmodels/mnist_f1", protected=["runs/mnist_f1"])
    ```
    """
    export_dir = os.path.abspath(export_dir)
    problem = _clash(export_dir, protected)
    if problem is None:
        _restore(export_dir)
        problem = _content_problem(export_dir)
    if problem:
        raise ExportPathError(f"export_dir={export_dir!r} {problem} (nothing was touched)")
    return export_dir


def _clash(export_dir, protected):
    real = os.path.realpath(export_dir)
    for path in [protected] if isinstance(protected, (str, os.PathLike)) else protected:
        other = os.path.realpath(path)
        if path and os.path.commonpath([real, other]) in (real, other):
            return (f"is, is inside or contains the protected path {path!r} (the run's "
                    "model_dir); expected a path outside it")
    return None


def _content_problem(export_dir):
    expected = "expected a new path, an empty directory or an earlier tfgap export"
    if os.path.islink(export_dir) or os.path.lexists(export_dir) and not os.path.isdir(export_dir):
        return f"is a file or a symlink; {expected}"
    entries = set(os.listdir(export_dir)) if os.path.isdir(export_dir) else set()
    if entries and not {"saved_model.pb", CONFIG_FILENAME} <= entries:
        return (f"is a directory but no tfgap export (no saved_model.pb, {CONFIG_FILENAME}); "
                f"{expected}")
    if entries - _EXPORT_ENTRIES:
        return (f"is a tfgap export holding foreign entries {sorted(entries - _EXPORT_ENTRIES)} "
                f"that replacing it would delete; expected only {sorted(_EXPORT_ENTRIES)}")
    return None


def export_saved_model(model, export_dir, *, dataset, config=None, protected=()):
    """Writes `model` as a SavedModel serving raw `dataset` examples.

    Args:
        model: a trained Keras model taking preprocessed inputs, returning logits.
        export_dir: the final directory: a new path, an empty directory or an
            earlier tfgap export, which is replaced atomically.
        dataset: the `tfgap.data` dataset name (its raw shape, dtype and
            evaluation preprocessing).
        config: a JSON-ready dict written as `tfgap_config.json` beside the model.
        protected: paths `export_dir` must keep clear of (see `check_export_path`).

    Returns:
        The absolute `export_dir`.

    Raises:
        ExportPathError: `export_dir` is not safe to write (see `check_export_path`).

    Example:

    ```python
    export_saved_model(model, "savedmodels/mnist_f1", dataset="mnist")
    served = tf.saved_model.load("savedmodels/mnist_f1")
    out = served.signatures["serving_default"](images=tf.zeros([3, 28, 28, 1], tf.uint8))
    out["probabilities"].shape  # (3, 10)
    ```
    """
    export_dir = check_export_path(export_dir, protected=protected)
    os.makedirs(os.path.dirname(export_dir), exist_ok=True)
    _remove_leftovers(export_dir)
    parent, name = os.path.split(export_dir)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the pid tells leftovers of killed exports
    tmp_dir, old_dir = (os.path.join(parent, f".{name}.{kind}-{tag}") for kind in ("tmp", "old"))
    module = _Serving(model, dataset)
    try:
        tf.saved_model.save(module, tmp_dir, signatures={"serving_default": module.serve})
        with open(os.path.join(tmp_dir, CONFIG_FILENAME), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        check_export_path(export_dir, protected=protected)  # again: writing took a while
        _put_in_place(tmp_dir, export_dir, old_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the new model unplaced, or the old one
    return export_dir


def _put_in_place(tmp_dir, export_dir, old_dir):
    if not os.path.lexists(export_dir) or not os.listdir(export_dir):
        os.rename(tmp_dir, export_dir)  # atomic; replaces only an empty directory
    elif not _exchange(tmp_dir, export_dir):  # exchanged: the caller removes the old at tmp_dir
        os.rename(export_dir, old_dir)  # its name lets `_restore` move it back
        try:
            os.rename(tmp_dir, export_dir)
        except BaseException:
            with contextlib.suppress(OSError):
                _restore(export_dir)  # else the next export or check does
            raise
        shutil.rmtree(old_dir)


def _scratch_dirs(export_dir, kinds="tmp|old"):  # [(pid, path)] of exports to export_dir
    parent, name = os.path.split(export_dir)
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:{kinds})-([0-9]+)-[0-9a-f]{{8}}")
    entries = os.listdir(parent) if os.path.isdir(parent) else ()
    found = [(pattern.fullmatch(e), os.path.join(parent, e)) for e in entries]
    return [(int(match.group(1)), path) for match, path in found
            if match and os.path.isdir(path) and not os.path.islink(path)]


def _is_dead(pid):
    try:
        os.kill(pid, 0)  # pid 0 (our process group) counts as alive
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: alive, another user's
        pass
    return False


def _restore(export_dir):
    """Moves the earlier export back if an export died between its two renames."""
    if os.path.lexists(export_dir):
        return
    olds = [path for pid, path in _scratch_dirs(export_dir, "old")
            if pid == os.getpid() or _is_dead(pid)]
    if olds:
        os.rename(max(olds, key=os.path.getmtime), export_dir)


def _remove_leftovers(export_dir):
    for pid, path in _scratch_dirs(export_dir):
        if _is_dead(pid):
            shutil.rmtree(path, ignore_errors=True)


def _exchange(a, b):
    """Atomically swaps the paths `a` and `b`; False where the OS or filesystem cannot."""
    renameat2 = _renameat2(ctypes.CDLL(None, use_errno=True), platform.machine())
    if renameat2 is None:
        return False
    if renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # e.g. a filesystem without it
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def _renameat2(libc, machine):
    """libc's `renameat2`, else the raw system call, else None (not Linux, unknown CPU)."""
    if not sys.platform.startswith("linux"):
        return None
    if hasattr(libc, "renameat2"):
        return libc.renameat2
    number = _SYS_RENAMEAT2.get(machine)
    if number is None or not hasattr(libc, "syscall"):
        return None
    return lambda *args: libc.syscall(*(ctypes.c_long(x) if isinstance(x, int) else x
                                        for x in (number, *args)))
