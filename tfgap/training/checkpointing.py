"""Checkpoints for exact mid-epoch resume, checked on restore, and SIGTERM / Ctrl-C handling.

A checkpoint holds the model, the optimizer (momentum slots, iteration count,
loss scale), the global step, the epoch, the initial weights `w_0` (so the
weight distance `||w_t - w_0||` survives a restart), the running sums of the
epoch in progress (so a resumed epoch logs what an uninterrupted one would)
and the size of the validation split it was trained beside (and, when
measured, the noise statistics' moving averages; with `adaptive="lr"`, the
AdaScale gain and progress; with `adaptive="batch"` also the batch
controller's state and each epoch's first step and batch). The data position
needs no state of its own: the trainer rebuilds each epoch's input pipeline
from `(seed, epoch)` and skips the steps already taken in that epoch, so a
resumed run sees exactly the batches an uninterrupted one would.

Every checkpoint, whatever made it (the clock, a step count, the end of the
run, a signal), goes through one `tf.train.CheckpointManager` and is numbered
by the global step, so `max_to_keep` holds for all of them.

`Checkpointer.restore()` finds the checkpoints from the files, not from the
`checkpoint` index file, and restores the newest one that reads completely
(TensorFlow checks each tensor's crc32c as it reads it, so a bit flip or a
truncation is caught). Damaged checkpoints are never deleted: they are moved
to `checkpoints/damaged/`, and the index is rewritten from the files before
the manager is created, so rotation counts the intact ones. A run never starts
again from step 0 beside checkpoint files unless told to (`start_over`).

Only the chief writes to `<model_dir>/checkpoints` (moves files, rewrites the
index); other workers verify it read-only, so they choose the same checkpoint,
and take part in saving (variables may be read with collectives) into a
temporary directory deleted at once.
"""

import dataclasses
import os
import re
import shutil
import signal
import threading
import time

import tensorflow as tf

DAMAGED_SUBDIR = "damaged"
INDEX_FILENAME = "checkpoint"
START_OVER_FLAG = "--start_over_if_damaged"
_FILE = re.compile(r"(ckpt-(\d+))\.(?:index|data-(\d+)-of-(\d+))")
# Failures that say nothing about the files: never a reason to move a checkpoint aside.
_NOT_DAMAGE = (MemoryError, tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.ResourceExhaustedError)
# (text in the error, reason reported), first match wins.
_REASONS = (("Checksum does not match", "DataLoss: checksum mismatch"),
            ("Read less bytes", "truncated data file"),
            ("sstable", "unreadable .index"), ("block checksum", "unreadable .index"))


class Preempted(Exception):
    """Raised out of training after a preemption checkpoint was written.

    Re-running the same command resumes from that checkpoint. Recipes exit
    with code 42, the restart code of `tf.distribute.experimental.TerminationConfig`.
    """


class Interrupted(Preempted):
    """Raised out of training after Ctrl-C (SIGINT), once a checkpoint was written.

    Re-running the same command resumes from it; the command line exits with 130.
    """


class CheckpointError(RuntimeError):
    """Checkpoint files are present but none can be restored; nothing was moved."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """What `Checkpointer.restore()` restored: its prefix, its step, and the
    `(prefix, reason)` of each damaged checkpoint passed over (moved to
    `checkpoints/damaged/` by the chief), newest first."""

    path: str
    step: int
    skipped: tuple = ()

    def describe(self):
        """One line for the log: `Resumed from ckpt-8 (step 8); ckpt-12 was damaged (...) ...`."""
        line = f"Resumed from {os.path.basename(self.path)} (step {self.step})"
        if self.skipped:
            line += "; " + _moved(self.skipped, os.path.dirname(self.path))
        return line


class Checkpointer:
    """Saves and restores one run's training state.

    Call `restore()` before the first `save()`: the `tf.train.CheckpointManager`
    (`manager`) is created at its first use, after `restore()` has rewritten
    the index, so `max_to_keep` rotates the checkpoints found on disk.

    Args:
        directory: `<model_dir>/checkpoints`.
        is_chief: whether this process is the chief (the only real writer).
        task_id: this worker's id (names its temporary directory).
        max_to_keep: checkpoints kept by the chief.
        **objects: trackables to checkpoint (model, optimizer, step, ...).
    """

    def __init__(self, directory, *, is_chief=True, task_id=None, max_to_keep=3, **objects):
        self.directory = directory
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**objects)
        if is_chief:
            self._write_dir = directory
        else:
            self._write_dir = os.path.join(directory, ".worker_tmp", f"worker_{task_id or 0}")
        self._max_to_keep = max_to_keep if is_chief else 1
        self._manager = self._latest = None
        self.note = None  # after `restore()`: a line to print when damaged files were found

    @property
    def manager(self):
        """The `tf.train.CheckpointManager`, created at first use (after `restore()`)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self._write_dir, max_to_keep=self._max_to_keep)
        return self._manager

    @property
    def latest(self):
        """The newest intact checkpoint of the chief (restored or saved since), or `None`."""
        if self._latest is not None:
            return self._latest
        try:
            return tf.train.latest_checkpoint(self.directory)
        except (ValueError, tf.errors.OpError):  # an empty or unreadable index
            return None

    def restore(self, start_over=False):
        """Restores the newest intact checkpoint: returns `Restored`, or `None` for step 0.

        Newer damaged checkpoints are passed over. When checkpoint files exist
        but none is intact, raises `CheckpointError`, or with `start_over`
        moves them aside and returns `None`. Sets `note`.
        """
        groups = _scan(self.directory)
        stems = sorted(groups, key=lambda stem: groups[stem]["step"], reverse=True)
        skipped = []
        for i, stem in enumerate(stems):
            reason = _incomplete(groups[stem]) or _unreadable(self._path(stem))
            if reason is None:
                return self._resume(groups, stems[i:], skipped)
            skipped.append((self._path(stem), reason))
        return self._start_over(groups, skipped, start_over)

    def save(self, step):
        """Writes a checkpoint at `step` (every worker must call this)."""
        path = self.manager.save(checkpoint_number=int(step))
        self._latest = self._path(f"ckpt-{int(step)}")
        if not self.is_chief:
            tf.io.gfile.rmtree(self._write_dir)
            return None
        return path

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _resume(self, groups, stems, skipped):
        """Restores `stems[0]`; moves `skipped` and older incomplete ones aside."""
        self._load(self._path(stems[0]))
        skipped += [(self._path(s), r) for s in stems[1:] if (r := _incomplete(groups[s]))]
        bad = {os.path.basename(path) for path, _ in skipped}
        if self.is_chief:
            self._move_aside(sorted(bad), groups)
            self._write_index([s for s in reversed(stems) if s not in bad])
        restored = Restored(self._path(stems[0]), groups[stems[0]]["step"], tuple(skipped))
        self._manager, self._latest = None, restored.path
        self.note = restored.describe() if skipped else None
        return restored

    def _load(self, path):
        try:
            self.checkpoint.restore(path).expect_partial()
        except _NOT_DAMAGE:
            raise
        except Exception as error:  # its files read intact: the objects do not fit them
            raise CheckpointError(
                f"{path} reads intact but does not fit this run's model or optimizer "
                f"({_first_line(error)}); nothing was moved. Resume it with the settings it "
                "was trained with, or use another model_dir.") from error

    def _start_over(self, groups, skipped, start_over):
        self._manager = self._latest = self.note = None
        if not groups:
            return None
        if not start_over:
            found = ", ".join(f"{os.path.basename(p)} ({reason})" for p, reason in skipped)
            raise CheckpointError(
                f"No intact checkpoint in {self.directory}: {found}. Nothing was moved or "
                f"deleted; pass {START_OVER_FLAG} (start_over_if_damaged=True) to move them to "
                f"{self._path(DAMAGED_SUBDIR)}{os.sep} and start from step 0.")
        if self.is_chief:
            index = [INDEX_FILENAME] if tf.io.gfile.exists(self._path(INDEX_FILENAME)) else []
            self._move_aside(sorted(groups) + index, groups)
        self.note = f"Started over from step 0 ({START_OVER_FLAG}); " + _moved(
            skipped, self.directory)
        return None

    def _move_aside(self, stems, groups):
        """Moves (never deletes) each checkpoint's files to `damaged/`, renaming on a clash."""
        if not stems:
            return
        damaged = self._path(DAMAGED_SUBDIR)
        tf.io.gfile.makedirs(damaged)
        taken = set(tf.io.gfile.listdir(damaged))
        for stem in stems:
            suffixes = [name[len(stem):] for name in groups.get(stem, {"names": [stem]})["names"]]
            new, k = stem, 0
            while any(new + suffix in taken for suffix in suffixes):
                k += 1
                new = f"{stem}.{k}"
            for suffix in suffixes:
                tf.io.gfile.rename(self._path(stem + suffix), os.path.join(damaged, new + suffix))
                taken.add(new + suffix)

    def _write_index(self, stems):
        """Makes `checkpoint` list `stems` (oldest first, the restored one last) if it does not."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except (ValueError, tf.errors.OpError):  # an empty or unreadable index
            state = None
        if state is not None and os.path.basename(state.model_checkpoint_path) == stems[-1] and [
                os.path.basename(p) for p in state.all_model_checkpoint_paths] == stems:
            return
        now = time.time()
        # Timestamps newer than `last_preserved_timestamp`, or the manager never rotates them.
        times = [min(now, tf.io.gfile.stat(self._path(s + ".index")).mtime_nsec / 1e9)
                 for s in stems]
        # Names stay relative to the directory (TF rewrites them against a relative one).
        names = stems if os.path.isabs(self.directory) else [self._path(s) for s in stems]
        tf.compat.v1.train.update_checkpoint_state(
            self.directory, names[-1], all_model_checkpoint_paths=names,
            all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1.0)


def has_checkpoint_files(directory):
    """Whether `directory` holds `ckpt-<N>` files (intact or not; `damaged/` not counted)."""
    return bool(_scan(directory))


def _scan(directory):
    """`{stem: {"step", "index", "shards", "names"}}` of the `ckpt-<N>.*` files in `directory`."""
    try:
        names = tf.io.gfile.listdir(directory)
    except tf.errors.NotFoundError:
        return {}
    groups = {}
    for match in filter(None, map(_FILE.fullmatch, names)):
        group = groups.setdefault(
            match[1], {"step": int(match[2]), "index": False, "shards": set(), "names": []})
        group["names"].append(match[0])
        if match[3] is None:
            group["index"] = True
        else:
            group["shards"].add((int(match[3]), int(match[4])))
    return groups


def _incomplete(group):
    """Why a checkpoint's set of files cannot be restored, or `None`."""
    if not group["index"]:
        return "no .index"
    counts = {n for _, n in group["shards"]}
    if not counts:
        return "no data file"
    if len(counts) > 1 or {i for i, _ in group["shards"]} != set(range(counts.pop())):
        return "missing data shard"
    return None


def _unreadable(prefix):
    """Why a checkpoint does not read completely, or `None` (TF checks each tensor's crc32c)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except _NOT_DAMAGE:
        raise
    except Exception as error:  # any other failure to read the files is damage
        text = str(error)
        return next((reason for key, reason in _REASONS if key in text),
                    f"{type(error).__name__}: {_first_line(error)}")
    return None


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:160]


def _moved(skipped, directory):
    where = os.path.join(directory, DAMAGED_SUBDIR) + os.sep
    if len(skipped) == 1:
        (path, reason), = skipped
        return f"{os.path.basename(path)} was damaged ({reason}) and was moved to {where}"
    names = ", ".join(f"{os.path.basename(path)} ({reason})" for path, reason in skipped)
    return f"{names} were damaged and were moved to {where}"


class PreemptionWatcher:
    """Notes a SIGTERM (a preemption notice) or a Ctrl-C (SIGINT) for the training loop.

    The handler only sets `requested` and records the signal in `signal`
    (`signal.SIGTERM` or `signal.SIGINT`, the latest one); the trainer looks
    after every call of its step function, saves a step-numbered checkpoint
    (all workers together: any worker's notice is agreed on with a collective)
    and raises `Preempted`, or `Interrupted` after SIGINT. The first Ctrl-C puts
    back `signal.default_int_handler`, so a second one (during the save) raises
    `KeyboardInterrupt` as soon as Python regains control. `close()` restores
    both previous handlers so several runs in one process do not leak state.

    >>> import os, signal
    >>> watcher = PreemptionWatcher()
    >>> os.kill(os.getpid(), signal.SIGTERM)
    >>> watcher.requested, watcher.signal == signal.SIGTERM
    (True, True)
    >>> watcher.close()
    """

    _DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}

    def __init__(self):
        self.requested = False
        self.signal = None
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self._DEFAULTS}

    def _handle(self, signum, frame):
        self.requested = True
        self.signal = signal.Signals(signum)
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts the save
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @staticmethod
    def available():
        """Signal handlers can only be installed from the main thread."""
        return threading.current_thread() is threading.main_thread()

    def close(self):
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous.items():
                signal.signal(signum, self._DEFAULTS[signum] if previous is None else previous)


def remove_worker_tmp(directory):
    """Deletes leftover temporary worker checkpoints (after a crash)."""
    shutil.rmtree(os.path.join(directory, ".worker_tmp"), ignore_errors=True)
