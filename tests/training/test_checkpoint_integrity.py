"""Restoring from damaged checkpoint directories, and Ctrl-C handling.

Real `tf.train.CheckpointManager` files (steps 4, 8 and 12, each with its own
values) are damaged on disk, then restored by a fresh `Checkpointer`.
"""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from tfgap.training.checkpointing import (
    CheckpointError,
    Checkpointer,
    Interrupted,
    Preempted,
    PreemptionWatcher,
    Restored,
    has_checkpoint_files,
)

SIZE = 256


def _checkpointer(directory, **kwargs):
    v = tf.Variable(tf.zeros([SIZE]))
    step = tf.Variable(0, dtype=tf.int64)
    return Checkpointer(str(directory), max_to_keep=3, v=v, step=step, **kwargs), v, step


def _save(checkpointer, v, step, number):
    v.assign(tf.fill([SIZE], float(number)))
    step.assign(number)
    checkpointer.save(number)


@pytest.fixture
def ckpt_dir(tmp_path):
    """`checkpoints/` with ckpt-4, ckpt-8 and ckpt-12 (v filled with the step)."""
    directory = tmp_path / "checkpoints"
    checkpointer, v, step = _checkpointer(directory)
    assert checkpointer.restore() is None
    for number in (4, 8, 12):
        _save(checkpointer, v, step, number)
    return directory


def _data(directory, number):
    return directory / f"ckpt-{number}.data-00000-of-00001"


def _listed(directory):
    state = tf.train.get_checkpoint_state(str(directory))
    return [os.path.basename(p) for p in state.all_model_checkpoint_paths]


def _steps_on_disk(directory):
    return sorted(int(n[5:].split(".")[0]) for n in os.listdir(directory) if n.endswith(".index"))


def _assert_restored(directory, number, skipped_reason=None):
    checkpointer, v, step = _checkpointer(directory)
    restored = checkpointer.restore()
    assert isinstance(restored, Restored)
    assert restored.step == number and restored.path == os.path.join(directory, f"ckpt-{number}")
    assert int(step.numpy()) == number
    np.testing.assert_array_equal(v.numpy(), np.full([SIZE], float(number)))
    assert checkpointer.latest == restored.path
    if skipped_reason is None:
        assert restored.skipped == () and checkpointer.note is None
    else:
        (path, reason), = restored.skipped
        assert path.endswith("ckpt-12") and skipped_reason in reason
        line = restored.describe()
        assert line.startswith(f"Resumed from ckpt-{number} (step {number}); ckpt-12 was damaged")
        assert os.path.join(directory, "damaged") in line and line == checkpointer.note
    return checkpointer, v, step


def _assert_moved_aside(directory, names):
    damaged = directory / "damaged"
    assert sorted(os.listdir(damaged)) == sorted(names)
    for name in names:
        assert not (directory / name).exists()


def test_truncated_newest_data_file_falls_back_to_the_previous_checkpoint(ckpt_dir):
    data = _data(ckpt_dir, 12)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    _assert_restored(ckpt_dir, 8, "truncated data file")
    _assert_moved_aside(ckpt_dir, ["ckpt-12.index", data.name])
    assert _listed(ckpt_dir) == ["ckpt-4", "ckpt-8"]
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-8")


def test_bit_flip_in_newest_data_file_falls_back_to_the_previous_checkpoint(ckpt_dir):
    data = _data(ckpt_dir, 12)
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0x10
    data.write_bytes(bytes(content))
    _assert_restored(ckpt_dir, 8, "checksum mismatch")
    _assert_moved_aside(ckpt_dir, ["ckpt-12.index", data.name])


def test_empty_index_file_restores_the_newest_and_rewrites_it(ckpt_dir):
    (ckpt_dir / "checkpoint").write_text("")
    _assert_restored(ckpt_dir, 12)
    assert _listed(ckpt_dir) == ["ckpt-4", "ckpt-8", "ckpt-12"]
    assert not (ckpt_dir / "damaged").exists()


@pytest.mark.parametrize("relative", [False, True])
def test_deleted_index_file_is_rebuilt_and_rotation_still_holds(ckpt_dir, relative, monkeypatch):
    (ckpt_dir / "checkpoint").unlink()
    if relative:  # TF rewrites the names in the index against a relative directory
        monkeypatch.chdir(ckpt_dir.parent)
        ckpt_dir = ckpt_dir.relative_to(ckpt_dir.parent)
    checkpointer, v, step = _assert_restored(ckpt_dir, 12)
    assert _listed(ckpt_dir) == ["ckpt-4", "ckpt-8", "ckpt-12"]
    for number in (16, 20):
        _save(checkpointer, v, step, number)
    assert _steps_on_disk(ckpt_dir) == [12, 16, 20]
    assert _listed(ckpt_dir) == ["ckpt-12", "ckpt-16", "ckpt-20"]
    assert checkpointer.latest.endswith("ckpt-20")


def test_deleted_newest_index_falls_back_and_moves_its_data_aside(ckpt_dir):
    (ckpt_dir / "ckpt-12.index").unlink()
    _assert_restored(ckpt_dir, 8, "no .index")
    _assert_moved_aside(ckpt_dir, [_data(ckpt_dir, 12).name])


def test_an_older_checkpoint_without_its_index_is_moved_aside_too(ckpt_dir):
    (ckpt_dir / "ckpt-4.index").unlink()
    checkpointer, _, _ = _checkpointer(ckpt_dir)
    restored = checkpointer.restore()
    assert restored.step == 12 and restored.skipped == ((str(ckpt_dir / "ckpt-4"), "no .index"),)
    assert restored.describe().startswith("Resumed from ckpt-12 (step 12); ckpt-4 was damaged")
    _assert_moved_aside(ckpt_dir, [_data(ckpt_dir, 4).name])
    assert _listed(ckpt_dir) == ["ckpt-8", "ckpt-12"]


def test_intact_directory_is_restored_without_touching_a_file(ckpt_dir):
    before = {n: os.stat(ckpt_dir / n).st_mtime_ns for n in os.listdir(ckpt_dir)}
    _assert_restored(ckpt_dir, 12)
    assert {n: os.stat(ckpt_dir / n).st_mtime_ns for n in os.listdir(ckpt_dir)} == before


def _damage_all(directory):
    for number in (4, 8, 12):
        _data(directory, number).write_bytes(b"")


def test_all_damaged_is_refused_and_nothing_is_moved_or_deleted(ckpt_dir):
    _damage_all(ckpt_dir)
    before = sorted(os.listdir(ckpt_dir))
    assert has_checkpoint_files(ckpt_dir)
    checkpointer, _, _ = _checkpointer(ckpt_dir)
    with pytest.raises(CheckpointError, match="--start_over_if_damaged") as raised:
        checkpointer.restore()
    message = str(raised.value)
    assert "\n" not in message and str(ckpt_dir) in message
    assert "ckpt-12 (truncated data file)" in message and "ckpt-4" in message
    assert sorted(os.listdir(ckpt_dir)) == before


def test_all_damaged_with_start_over_moves_them_aside_and_starts_from_step_0(ckpt_dir):
    _damage_all(ckpt_dir)
    checkpointer, v, step = _checkpointer(ckpt_dir)
    assert checkpointer.restore(start_over=True) is None
    assert int(step.numpy()) == 0 and checkpointer.latest is None
    assert "Started over from step 0" in checkpointer.note
    names = [f"ckpt-{n}.{ext}" for n in (4, 8, 12) for ext in ("index", "data-00000-of-00001")]
    _assert_moved_aside(ckpt_dir, names + ["checkpoint"])
    assert not has_checkpoint_files(ckpt_dir)
    _save(checkpointer, v, step, 4)
    assert _listed(ckpt_dir) == ["ckpt-4"]


def test_non_chief_restores_the_same_step_and_moves_nothing(ckpt_dir):
    data = _data(ckpt_dir, 12)
    data.write_bytes(data.read_bytes()[:-3])
    before = sorted(os.listdir(ckpt_dir))
    v, step = tf.Variable(tf.zeros([SIZE])), tf.Variable(0, dtype=tf.int64)
    worker = Checkpointer(str(ckpt_dir), is_chief=False, task_id=1, v=v, step=step)
    assert worker.restore().step == 8 and int(step.numpy()) == 8
    assert sorted(os.listdir(ckpt_dir)) == before
    worker.save(9)  # writes to its temporary directory, removed at once
    assert sorted(os.listdir(ckpt_dir)) == sorted(before + [".worker_tmp"])
    assert os.listdir(ckpt_dir / ".worker_tmp") == []


def test_a_second_damaged_copy_does_not_overwrite_the_first(ckpt_dir):
    (ckpt_dir / "ckpt-12.index").unlink()
    checkpointer, v, step = _assert_restored(ckpt_dir, 8, "no .index")
    _save(checkpointer, v, step, 12)
    (ckpt_dir / "ckpt-12.index").unlink()
    _assert_restored(ckpt_dir, 8, "no .index")
    data = _data(ckpt_dir, 12).name
    assert sorted(os.listdir(ckpt_dir / "damaged")) == sorted([data, "ckpt-12.1" + data[7:]])


def test_fresh_directory_restores_nothing(tmp_path):
    checkpointer, _, _ = _checkpointer(tmp_path / "checkpoints")
    assert checkpointer.restore() is None
    assert checkpointer.latest is None and checkpointer.note is None
    assert not (tmp_path / "checkpoints").exists()
    assert not has_checkpoint_files(tmp_path / "checkpoints")


def _sentinel(signum, frame):  # a handler installed before the watcher
    raise AssertionError("the watcher's handler should have run")


def test_sigint_is_noted_a_second_one_interrupts_and_close_restores_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in saved:
            signal.signal(s, _sentinel)
        watcher = PreemptionWatcher()
        assert not watcher.requested and watcher.signal is None
        os.kill(os.getpid(), signal.SIGINT)
        assert watcher.requested and watcher.signal == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert watcher.signal == signal.SIGTERM
        watcher.close()
        assert all(signal.getsignal(s) is _sentinel for s in saved)
        assert issubclass(Interrupted, Preempted)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
