"""Everyday mistakes, as a user makes them: real recipe processes, real signals, real files.

Nothing a user owns is lost: a mistaken --export_dir is refused and touches
nothing; a resume under another batch size is refused naming both values; a
damaged newest checkpoint resumes from the previous one; a deleted index
resumes instead of restarting; a second process in one model_dir is refused;
Ctrl-C saves like SIGTERM. Each test starts recipe processes (TF import ~5-10 s).
"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.recipes.test_distributed import FLAGS, HOOKS, env, history, hooks, recipe, result
from tests.training.test_run_directory import snapshot

# FLAGS: 4 steps per epoch, 3 epochs = 12 steps. A checkpoint every 4 steps: 4, 8, 12.
RUN = [*FLAGS, "--strategy=one_device", "--deterministic", "--checkpoint_every_steps=4",
       "--checkpoint_every_seconds=0"]


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 12-step run with checkpoints at steps 4, 8 and 12."""
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    proc = recipe([*RUN, f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model_dir


def copy_of(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def test_a_user_folder_survives_a_mistaken_export_dir(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years of work")
    proc = recipe([*RUN, f"--model_dir={tmp_path / 'run'}", "--export", f"--export_dir={thesis}"],
                  env=env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "--export_dir" in one_line(proc.stderr) or "export" in one_line(proc.stderr)
    assert snapshot(thesis) == {"thesis.txt": b"four years of work"}
    assert not os.path.exists(tmp_path / "run")  # refused before training


def test_export_into_the_model_dir_is_refused_and_deletes_nothing(finished, tmp_path):
    model_dir = copy_of(finished, tmp_path)
    before = snapshot(model_dir)
    proc = recipe([*RUN, "--epochs=4", f"--model_dir={model_dir}", "--export",
                   f"--export_dir={model_dir}"], env=env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    one_line(proc.stderr)
    assert snapshot(model_dir) == before


def test_a_changed_batch_size_is_refused_naming_both_values(finished, tmp_path):
    model_dir = copy_of(finished, tmp_path)
    before = snapshot(model_dir)
    flags = [f for f in RUN if not f.startswith("--batch_size")]
    proc = recipe([*flags, "--batch_size=32", f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line(proc.stderr)
    assert "batch_size: 16 -> 32" in line and "--resume_with_changes" in line
    assert snapshot(model_dir) == before


def test_a_truncated_newest_checkpoint_resumes_from_the_previous_one(finished, tmp_path):
    model_dir = copy_of(finished, tmp_path)
    data = model_dir / "checkpoints" / "ckpt-12.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    proc = recipe([*RUN, f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resumed from" in proc.stdout and "ckpt-8" in proc.stdout, proc.stdout
    record = result(model_dir)
    assert record["resumed_from_step"] == 8 and record["global_step"] == 12
    assert history(model_dir) == history(finished)  # the same run, its last 4 steps again
    assert os.listdir(model_dir / "checkpoints" / "damaged")


def test_a_deleted_index_resumes_and_does_not_restart(finished, tmp_path):
    model_dir = copy_of(finished, tmp_path)
    os.remove(model_dir / "checkpoints" / "checkpoint")
    proc = recipe([*RUN, "--epochs=4", f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = result(model_dir)
    assert record["resumed_from_step"] == 12 and record["global_step"] == 16
    names = sorted(n for n in os.listdir(model_dir / "checkpoints") if n.endswith(".index"))
    assert names == ["ckpt-12.index", "ckpt-16.index", "ckpt-8.index"]  # 3 kept, rotated


def test_a_second_process_in_one_model_dir_is_refused(tmp_path):
    model_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, HOOKS, "mnist", "--sleep_at=2", "--sleep_seconds=60", "--",
         *RUN, f"--model_dir={model_dir}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env())
    try:
        for line in holder.stdout:  # the holder is training (and sleeping) at step 2
            if line.startswith("SLEEPING"):
                break
        proc = recipe([*RUN, f"--model_dir={model_dir}"], env=env())
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert f"pid {holder.pid}" in one_line(proc.stderr)
    finally:
        holder.kill()
        holder.wait()
    # Killed: its lock died with it, and the next run resumes.
    proc = recipe([*RUN, f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ctrl_c_saves_and_exits_130_then_resumes(tmp_path, finished):
    model_dir = tmp_path / "run"
    proc = hooks(["--sigint_at=6"], [*RUN, "--steps_per_execution=1", f"--model_dir={model_dir}"],
                 env=env())
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "INTERRUPTED" in proc.stdout
    assert sorted(n for n in os.listdir(model_dir / "checkpoints") if n.endswith(".index"))[-1] \
        == "ckpt-6.index"
    proc = recipe([*RUN, f"--model_dir={model_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result(model_dir)["resumed_from_step"] == 6
    assert history(model_dir) == history(finished)
