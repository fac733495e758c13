"""The run directory's contract: one writer, settings checked on resume, damaged files named.

In-process, through `train` (a few seconds each); the same cases through real
recipe processes are in tests/recipes/test_reliability.py.
"""

import json
import os
import subprocess
import sys

import pytest

from tfgap.training import ConfigError, RunDirBusy, RunDirError, TrainConfig, rundir, train


def tiny(tmp_path, **changes):
    fields = dict(dataset="mnist", model="mlp", model_dir=str(tmp_path / "run"), epochs=2,
                  batch_size=16, base_batch_size=16, lr_values=(0.05,), mock_data=True,
                  mock_examples=48, validation_examples=16, checkpoint_every_seconds=0,
                  model_options={"mlp_width": 8, "mlp_depth": 1}, verbose=0, seed=3)
    fields.update(changes)
    return TrainConfig(**fields)


def read(path):
    with open(path) as f:
        return json.load(f)


def snapshot(directory):
    """Every file under `directory` with its bytes (what "nothing was touched" means)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, directory)] = f.read()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run (4 steps, a checkpoint per epoch)."""
    config = tiny(tmp_path_factory.mktemp("finished"))
    train(config)
    return config


def test_each_changed_setting_is_refused_naming_old_and_new(finished):
    before = snapshot(finished.model_dir)
    other = finished.replace(batch_size=8, lr_values=(0.5,), seed=4)
    with pytest.raises(ConfigError) as info:
        train(other)
    message = str(info.value)
    assert "batch_size: 16 -> 8" in message
    assert "lr_values: [0.05] -> [0.5]" in message
    assert "seed: 3 -> 4" in message
    assert "\n" not in message and "Nothing was written" in message
    assert snapshot(finished.model_dir) == before


def test_another_model_is_refused_before_any_tensorflow_error(finished):
    other = finished.replace(model_options={"mlp_width": 12, "mlp_depth": 1})
    with pytest.raises(ConfigError, match=r"model_options: \{.*'mlp_width': 8\} -> "):
        train(other)


def test_settings_that_may_change_do_not_block_a_resume(tmp_path):
    config = tiny(tmp_path)
    train(config)
    longer = config.replace(epochs=3, verbose=0, keep_checkpoints=2, eval_every_epochs=2)
    result = train(longer)
    assert result["resumed_from_step"] == 4 and result["global_step"] == 6
    assert read(rundir.path(config.model_dir, rundir.CONFIG)) == longer.to_dict()


def test_polynomial_decay_keeps_its_length(tmp_path):
    config = tiny(tmp_path, lr_decay="polynomial")
    train(config)
    with pytest.raises(ConfigError, match="epochs: 2.0 -> 3.0"):
        train(config.replace(epochs=3))


def test_opting_in_records_the_change_and_keeps_the_past(tmp_path):
    config = tiny(tmp_path)
    train(config)
    changed = config.replace(epochs=3, lr_values=(0.01,), resume_with_changes=True)
    result = train(changed)
    assert result["resumed_from_step"] == 4
    saved = read(rundir.path(config.model_dir, rundir.CONFIG))
    assert saved["lr_values"] == [0.05]  # the value the run was started with
    assert saved["changes"] == [{"step": 4, "settings": {"lr_values": {"old": [0.05],
                                                                       "new": [0.01]}}}]
    history = read(rundir.path(config.model_dir, rundir.HISTORY))
    assert history["changes"] == saved["changes"]
    assert [h["epoch"] for h in history["history"]] == [1, 2, 3]
    # Resuming again under the changed settings needs no opt-in: they are the run's now.
    again = changed.replace(epochs=4, resume_with_changes=False)
    assert train(again)["global_step"] == 8
    assert read(rundir.path(config.model_dir, rundir.CONFIG))["changes"] == saved["changes"]


def test_a_run_directory_that_is_a_file_or_not_writable(tmp_path):
    path = tmp_path / "file"
    path.write_text("mine")
    with pytest.raises(RunDirError, match=r"model_dir=.*file, which is a file"):
        train(tiny(tmp_path, model_dir=str(path)))
    assert path.read_text() == "mine"
    with pytest.raises(RunDirError, match="is a file"):
        train(tiny(tmp_path, model_dir=str(path / "run")))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "read_only"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(RunDirError, match="not writable"):
            train(tiny(tmp_path, model_dir=str(locked / "run")))


def test_a_damaged_history_is_one_line(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished.model_dir, copy)
    (copy / rundir.HISTORY).write_text('{"history": [')
    with pytest.raises(RunDirError, match=r"history.json .*damaged"):
        train(finished.replace(model_dir=str(copy), epochs=3))


def test_the_lock_refuses_a_live_holder_and_takes_a_dead_ones(tmp_path):
    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from tfgap.training import rundir; "
         "lock = rundir.RunLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
         "time.sleep(600)", run_dir], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {holder.pid}") as info:
            rundir.RunLock(run_dir).acquire()
        assert info.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    lock = rundir.RunLock(run_dir)  # the kernel dropped the dead holder's lock
    lock.acquire()
    lock.release()
    assert not os.path.exists(os.path.join(run_dir, rundir.LOCK))


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    config = tiny(tmp_path, validation_examples=40)  # leaves no batch: refused
    with pytest.raises(ConfigError):
        train(config)
    assert not os.path.exists(config.model_dir)  # created for the lock, empty, removed
    train(tiny(tmp_path))
    assert not os.path.exists(rundir.path(tiny(tmp_path).model_dir, rundir.LOCK))
