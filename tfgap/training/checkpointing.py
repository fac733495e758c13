"""Checkpoints for exact mid-epoch resume, and preemption (SIGTERM) handling.

A checkpoint holds the model, the optimizer (momentum slots, iteration count,
loss scale), the global step, the epoch, the initial weights `w_0` (so the
weight distance `||w_t - w_0||` survives a restart), the running sums of the
epoch in progress (so a resumed epoch logs what an uninterrupted one would)
and the size of the validation split it was trained beside. The data position
needs no state of its own: the trainer rebuilds each epoch's input pipeline
from `(seed, epoch)` and skips the steps already taken in that epoch, so a
resumed run sees exactly the batches an uninterrupted one would.

Every checkpoint, whatever made it (the clock, a step count, the end of the
run, a SIGTERM), goes through one `tf.train.CheckpointManager` and is numbered
by the global step, so `max_to_keep` holds for all of them.

Only the chief writes to `<model_dir>/checkpoints`; other workers of a
multi-worker cluster must take part in saving (variables may be read with
collectives), so they write to a temporary directory that is deleted at once.
"""

import os
import shutil
import signal
import threading

import tensorflow as tf

CHECKPOINT_SUBDIR = "checkpoints"


class Preempted(Exception):
    """Raised out of training after a preemption checkpoint was written.

    Re-running the same command resumes from that checkpoint. Recipes exit
    with code 42, the restart code of `tf.distribute.experimental.TerminationConfig`.
    """


class Checkpointer:
    """Saves and restores one run's training state.

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
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=max_to_keep if is_chief else 1
        )

    @property
    def latest(self):
        """Path of the newest checkpoint written by the chief, or `None`."""
        return tf.train.latest_checkpoint(self.directory)

    def restore(self):
        """Restores the newest checkpoint; returns its path, or `None` if fresh."""
        path = self.latest
        if path is None:
            return None
        self.checkpoint.restore(path).expect_partial()
        return path

    def save(self, step):
        """Writes a checkpoint at `step` (every worker must call this)."""
        path = self.manager.save(checkpoint_number=int(step))
        if not self.is_chief:
            tf.io.gfile.rmtree(self._write_dir)
            return None
        return path


class PreemptionWatcher:
    """Notes a SIGTERM (a preemption notice) for the training loop to act on.

    The handler only sets `requested`; the trainer looks after every call of
    its step function, saves a step-numbered checkpoint through its own
    `Checkpointer` (all workers together: any worker's notice is agreed on
    with a collective) and raises `Preempted`. `close()` restores the previous
    SIGTERM handler so several runs in one process do not leak state.

    Example:

    >>> import os, signal
    >>> watcher = PreemptionWatcher()
    >>> watcher.requested
    False
    >>> os.kill(os.getpid(), signal.SIGTERM)
    >>> watcher.requested
    True
    >>> watcher.close()
    """

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    @staticmethod
    def available():
        """Signal handlers can only be installed from the main thread."""
        return threading.current_thread() is threading.main_thread()

    def close(self):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)


def remove_worker_tmp(directory):
    """Deletes leftover temporary worker checkpoints (after a crash)."""
    shutil.rmtree(os.path.join(directory, ".worker_tmp"), ignore_errors=True)
