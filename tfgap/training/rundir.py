"""The run directory: its file names, its one writer, and what it says about the run.

A run directory (`TrainConfig.model_dir`) holds:

- `config.json`: the settings the run was started with and, when it was resumed
  with `resume_with_changes`, each change (`"changes"`: step and old/new values);
- `history.json`: the per-epoch records, the weight-distance record and the
  same changes, at the step they took effect;
- `result.json`: the final record; `checkpoints/`; `logs/` (TensorBoard);
- `.lock` while a process trains in it.

This module is the one place that spells those names, reads and writes the
JSON files, and decides whether a directory may be resumed with a config:

- `check_usable` refuses, in one line, a `model_dir` that is a file or cannot
  be written, before anything is trained.
- `RunLock` lets one process at a time train in a directory (an advisory
  `fcntl.flock`, so the kernel releases it when its holder dies, however it
  dies); a second process is refused with the holder's pid.
- `resume_changes` compares the settings that shaped the run with the ones
  asked for. Settings declared `may_change_on_resume` (where to export, how
  often to checkpoint, the strategy, ...) and `epochs` (to extend a run; not
  under a polynomial decay, whose length it is) may differ; any other
  difference is refused with one line naming each setting, old and new,
  unless the user opts in with `resume_with_changes`.
"""

import errno
import json
import os

from tfgap.training.config import ConfigError, settings

CONFIG = "config.json"
HISTORY = "history.json"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
LOCK = ".lock"

# What each entry of a run directory is, in words (artifact lines name them so).
DESCRIPTIONS = {RESULT: "result", HISTORY: "history", CONFIG: "config",
                CHECKPOINTS: "checkpoints", LOGS: "TensorBoard logs"}


class RunDirError(RuntimeError):
    """A run directory that cannot be used as it is (one line says why and what to do)."""


class RunDirBusy(RunDirError):
    """Another live process trains in the run directory.

    Attributes:
        pid: the holder's process id, as it wrote it (`None` if unreadable).
    """

    def __init__(self, message, pid=None):
        super().__init__(message)
        self.pid = pid


def path(model_dir, name):
    """`<model_dir>/<name>` for one of this module's names (`CONFIG`, `HISTORY`, ...)."""
    return os.path.join(model_dir, name)


# -- a usable directory, one writer ------------------------------------------------------


def check_usable(model_dir):
    """Raises `RunDirError` unless `model_dir` is (or can become) a writable directory."""
    if os.path.lexists(model_dir) and not os.path.isdir(model_dir):
        raise RunDirError(f"Expected model_dir to be a directory (or not to exist). Received: "
                          f"model_dir={model_dir}, which is a file. Nothing was written.")
    existing = model_dir
    while existing and not os.path.exists(existing):
        parent = os.path.dirname(existing.rstrip(os.sep)) or "."
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise RunDirError(f"Expected model_dir under a directory. Received: "
                          f"model_dir={model_dir}, under {existing}, which is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"Expected a model_dir this user can write. Received: "
                          f"model_dir={model_dir} ({existing} is not writable).")


class RunLock:
    """One writer per run directory: an exclusive `flock` on `<model_dir>/.lock`.

    The lock file holds the holder's pid and host. The kernel drops the lock
    when the holding process exits or is killed, so a lock left by a crashed
    run is stale at once and the next run takes it. `release()` removes the
    file. Advisory locks need a file system that supports them (local disks
    do; some network file systems do not: there the lock is not taken, and
    the run goes on, as before this lock existed).

    Example:

    >>> import tempfile
    >>> run_dir = tempfile.mkdtemp()
    >>> lock = RunLock(run_dir)
    >>> lock.acquire()
    >>> try:
    ...     RunLock(run_dir).acquire()
    ... except RunDirBusy as e:
    ...     e.pid == os.getpid()
    True
    >>> lock.release()
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.path = path(model_dir, LOCK)
        self._fd = None
        self._made_dir = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()
        return False

    def acquire(self):
        """Takes the lock, or raises `RunDirBusy` naming the live holder's pid."""
        import fcntl  # noqa: PLC0415 (POSIX only)

        self._made_dir = not os.path.exists(self.model_dir)
        os.makedirs(self.model_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    pid = _read_pid(self.path)
                    raise RunDirBusy(
                        f"Another process (pid {pid}) is training in model_dir="
                        f"{self.model_dir}; two runs in one directory would mix their "
                        "checkpoints. Wait for it to end, stop it, or use another model_dir.",
                        pid=pid) from None
                return  # no locking on this file system
            # The holder before us may have removed the file after we opened it: retry
            # on the file now at the path, so two processes never hold two inodes.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
        self._fd = fd

    def release(self):
        """Removes the lock file and drops the lock (a no-op when not held).

        A `model_dir` that `acquire` created and that is still empty (a run
        that stopped before writing anything) is removed too.
        """
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
        if self._made_dir:
            try:
                os.rmdir(self.model_dir)
            except OSError:
                pass  # not empty: the run wrote something


def _read_pid(lock_path):
    try:
        with open(lock_path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- the JSON files ------------------------------------------------------------------------


def write_json(file_path, value):
    """Writes `value` as JSON to `file_path` atomically (a temporary file, then a rename).

    NumPy scalars become numbers and tuples lists; a reader never sees a
    half-written file, whatever kills the writer.
    """
    tmp = f"{file_path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, file_path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")


def read_json(file_path):
    """The JSON in `file_path`; `RunDirError` (one line) when it is not valid JSON."""
    try:
        with open(file_path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(
            f"Expected {file_path} to be the JSON tfgap wrote; it is damaged ({e}). Restore "
            "it, or move it away to go on without what it recorded.") from None


def read_result(model_dir):
    """Reads `<model_dir>/result.json`."""
    return read_json(path(model_dir, RESULT))


def finished_result(config):
    """`result.json` of a completed run of exactly `config` in `config.model_dir`, or `None`.

    `None` when there is no result, the run did not complete, or it was run
    with other settings: then training `config` again is what is needed.
    """
    result_path = path(config.model_dir, RESULT)
    if not os.path.exists(result_path):
        return None
    result = read_json(result_path)
    if result.get("status") != "completed" or result.get("config") != config.to_dict():
        return None
    return result


def read_history(model_dir, up_to_step):
    """The records of `history.json` up to `up_to_step`: `(history, distance_record, changes)`."""
    history_path = path(model_dir, HISTORY)
    if not up_to_step or not os.path.exists(history_path):
        return [], [], []
    saved = read_json(history_path)
    history = [h for h in saved.get("history", []) if h["step"] <= up_to_step]
    record = [r for r in saved.get("distance_record", []) if r[0] <= up_to_step]
    changes = [c for c in saved.get("changes", []) if c["step"] <= up_to_step]
    return history, record, changes


def restore_model(model_dir, model):
    """Reads the trained weights of the newest checkpoint in `model_dir` into `model`.

    `model` must be the network the run trained (`tfgap.training.build_model`
    of its config; ghost batch sizes may differ, they hold no weights). The
    trainer checkpoints it under the name `model`.

    Returns:
        The checkpoint read, or `None` when `model_dir` holds none.
    """
    import tensorflow as tf  # noqa: PLC0415

    latest = tf.train.latest_checkpoint(path(model_dir, CHECKPOINTS))
    if latest is not None:
        tf.train.Checkpoint(model=model).read(latest).expect_partial()
    return latest


def write_history(model_dir, history, distance_record, changes=()):
    """Writes `history.json` (`changes` only when there were any)."""
    value = {"history": history, "distance_record": distance_record}
    if changes:
        value["changes"] = list(changes)
    write_json(path(model_dir, HISTORY), value)


# -- resuming with the same settings ---------------------------------------------------------


def started_config(model_dir):
    """The settings the run in `model_dir` now runs under (its start plus its changes), or `None`.

    Returns:
        `(settings, changes)`: a dict as `TrainConfig.to_dict()` writes it and
        the list of recorded changes; `None` when there is no `config.json`.
    """
    config_path = path(model_dir, CONFIG)
    if not os.path.exists(config_path):
        return None
    saved = read_json(config_path)
    changes = saved.pop("changes", [])
    for change in changes:
        saved.update({name: values["new"] for name, values in change["settings"].items()})
    return saved, changes


def differences(previous, config):
    """`{setting: (old, new)}` for each setting of `config` that may not change on resume.

    Args:
        previous: the settings the run was started with (a `to_dict()` dict).
        config: the `TrainConfig` asked for.
    """
    wanted = json.loads(json.dumps(config.to_dict()))
    free = {name for name, declared in settings().items() if declared.may_change_on_resume}
    if config.lr_decay == "polynomial" or previous.get("lr_decay") == "polynomial":
        free.discard("epochs")  # the decay's length: the rate at every step depends on it
    if config.adaptive != "off" or previous.get("adaptive", "off") != "off":
        free.discard("steps_per_execution")  # where the AdaScale gain is set: it shapes the run
    defaults = json.loads(json.dumps(_defaults()))
    out = {}
    for name in wanted:
        if name in free:
            continue
        old = previous.get(name, defaults.get(name))  # a setting added since: its default
        if old != wanted[name]:
            out[name] = (old, wanted[name])
    return out


def _defaults():
    return {name: declared.default for name, declared in settings().items()
            if not declared.required}


def resume_changes(config, *, step):
    """Checks that `config` may continue the run in its `model_dir`; returns the changes.

    Call it before anything is written to `model_dir`.

    Args:
        config: the `TrainConfig` asked for.
        step: the step the run resumes from (0: nothing to resume).

    Returns:
        The changes to record, `{setting: (old, new)}` (empty when the settings
        agree or nothing is resumed).

    Raises:
        ConfigError: settings that differ, without `config.resume_with_changes`
            (one line naming each setting, old and new); checkpoints without a
            `config.json` to compare them with.
    """
    if not step:
        return {}
    started = started_config(config.model_dir)
    if started is None:
        if config.resume_with_changes:
            return {}
        raise ConfigError(
            f"Expected {path(config.model_dir, CONFIG)} beside the checkpoints in model_dir="
            f"{config.model_dir}, to check that this run continues with the settings it was "
            "started with. Restore it, or pass resume_with_changes=True. Nothing was written.")
    changed = differences(started[0], config)
    if changed and not config.resume_with_changes:
        listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items())
        raise ConfigError(
            f"Expected the settings the run in model_dir={config.model_dir} was started with "
            f"(it is at step {step}). Received other values of: {listed}. Use another "
            "model_dir, the old values, or resume_with_changes=True to continue under the new "
            "ones (recorded in config.json and history.json). Nothing was written.")
    return changed


def write_config(config, *, step, changes):
    """Writes `config.json` for a run that starts, or resumes at `step` (0: starts).

    A resumed run's file keeps the value each changed setting was started with
    and lists the changes (`"changes"`, the earlier ones and `changes` at
    `step`), so it never rewrites the past; settings that may change on resume
    are written as they are now.
    """
    config_path = path(config.model_dir, CONFIG)
    value = config.to_dict()
    started = started_config(config.model_dir) if step else None
    if started is not None:
        original = read_json(config_path)
        recorded = list(started[1]) + ([change_record(changes, step)] if changes else [])
        for change in recorded:
            for name in change["settings"]:
                value[name] = original.get(name)
        if recorded:
            value["changes"] = recorded
    write_json(config_path, value)


def change_record(changes, step):
    """One change as `config.json` and `history.json` record it."""
    return {"step": int(step),
            "settings": {name: {"old": old, "new": new} for name, (old, new) in changes.items()}}
