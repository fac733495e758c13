"""Several processes: multi-worker training, SIGKILL and resume, SIGTERM preemption,
and the --logical_cpus split. Each test starts recipe processes (TF import ~5-10 s each)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = os.path.join(HERE, "hooks_script.py")
# 80 mock examples, 16 held out for validation, 64 trained on at batch 16: 4 steps per
# epoch, 3 epochs = 12 steps.
FLAGS = ["--mock_data", "--mock_examples=80", "--validation_examples=16", "--batch_size=16", "--base_batch_size=16",
         "--epochs=3", "--model=mlp", "--model_options=mlp_width=16,mlp_depth=1", "--verbose=2",
         "--lr_boundaries=2", "--lr_values=0.1,0.01", "--noexport"]


def env(**extra):
    out = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def hooks(options, flags, **kwargs):
    return subprocess.run([sys.executable, HOOKS, "mnist", *options, "--", *flags],
                          capture_output=True, text=True, timeout=300, **kwargs)


def recipe(flags, **kwargs):
    return subprocess.run([sys.executable, "-m", "tfgap.recipes.mnist", *flags],
                          capture_output=True, text=True, timeout=300, **kwargs)


def model_weights(model_dir):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith("model/") and n.endswith("VARIABLE_VALUE"))
    return {n: reader.get_tensor(n) for n in names}


def result(model_dir):
    with open(os.path.join(model_dir, "result.json")) as f:
        return json.load(f)


# AdaScale (--adaptive=lr): the regime of batch 8 at batch 32. Its base regime is 3 epochs of
# 64 // 8 = 8 steps (24); the run ends when the gains (1 to 4) add up to 24.
ADASCALE = ["--batch_size=32", "--base_batch_size=8", "--adaptive=lr", "--lr_scaling=none",
            "--noise_statistics_decay=0.5"]


# --adaptive=batch from 16 up to 32 on 128 training examples: 8 steps an epoch at 16, 4 at 32.
ADAPTIVE_BATCH = ["--mock_examples=144", "--epochs=4", "--batch_size=16", "--base_batch_size=16",
                  "--max_batch_size=32", "--adaptive=batch", "--lr_scaling=none",
                  "--noise_statistics_decay=0.5"]
# Pinned seconds per step (tests/recipes/hooks_script.py --step_times). By goodput
# (tfgap.adaptive.goodput): epoch 1 explores 32 (16 alone is timed); from epoch 2 on, FAST
# (32 as fast as 16 per step) keeps 32, SLOW (no speed-up) returns to 16, the better
# statistical efficiency at the same examples per second.
FAST, SLOW = "--step_times=16:0.01,32:0.01", "--step_times=16:0.01,32:0.02"


def two_workers(tmp_path, flags=(), options=((), ())):
    """Trains FLAGS + `flags` on two local worker processes in `tmp_path / "run"`.

    `options[i]`: worker i's hooks options. Each worker dumps its final weights
    to `w<index>.npz` and its step logs to `logs<index>.json` in `tmp_path`;
    returns `result.json`.
    """
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, HOOKS, "mnist", f"--dump_weights={tmp_path / f'w{index}.npz'}",
             f"--dump_logs={tmp_path / f'logs{index}.json'}", *options[index], "--",
             *FLAGS, *flags, "--strategy=multi_worker", f"--model_dir={tmp_path / 'run'}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env(TF_CONFIG=tf_config)))
    outputs = [p.communicate(timeout=300) for p in procs]
    record = result(tmp_path / "run") if os.path.exists(tmp_path / "run" / "result.json") else {}
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert f"DONE step={record.get('global_step')}" in out
    assert record["num_replicas"] == 2 and record["strategy"] == "multi_worker"
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    assert not os.path.exists(tmp_path / "run" / "workertemp_1")
    return record


def test_two_workers_train_and_agree(tmp_path):
    assert two_workers(tmp_path)["global_step"] == 12


def test_two_workers_agree_on_every_adascale_gain(tmp_path):
    record = two_workers(tmp_path, ADASCALE)
    logs = [json.loads((tmp_path / f"logs{index}.json").read_text()) for index in range(2)]
    assert logs[0] == logs[1] and len(logs[0]) == record["global_step"] < 24
    gains = [log["gain"] for log in logs[0]]
    assert all(1.0 <= g <= 4.0 for g in gains) and max(gains) > 1.0, gains
    assert record["adascale"]["progress"] == logs[0][-1]["progress"] >= 24


def test_two_workers_train_at_the_chiefs_batch(tmp_path):
    # The chief's pinned times make it keep 32; the other worker's would return to 16 (the
    # kill test below runs them). Both train at the chief's batch, in one step per step, also
    # after decisions within epochs (--batch_decision_steps=4: each worker's pipeline, a shard,
    # reads its share of each step's base batches and joins them).
    record = two_workers(tmp_path, [*ADAPTIVE_BATCH, "--batch_decision_steps=4"],
                         options=([FAST], [SLOW]))
    logs = [json.loads((tmp_path / f"logs{index}.json").read_text()) for index in range(2)]
    assert logs[0] == logs[1] and len(logs[0]) == record["global_step"]
    # The run ends when its progress (the sum of gains) reaches the base regime's 4 x 8 steps.
    assert record["adascale"]["progress"] >= 32 > record["global_step"]
    control = record["batch_control"]
    segments, decisions = control["segments"], control["decisions"]
    assert any(offset for *_, offset in segments)  # a decision within an epoch
    assert segments[-1][1] == 32 and {d["reason"] for d in decisions} <= {
        "goodput", "explore", "no_timings"}
    ends = [first for first, *_ in segments[1:]] + [record["global_step"]]
    assert [log["batch_size"] for log in logs[0]] == [
        batch for (first, batch, *_), end in zip(segments, ends) for _ in range(first, end)]


def killed_resumed_and_full(tmp_path, flags, kill_at, options=()):
    """Runs `flags` killed hard (SIGKILL) after step `kill_at`, resumed by the same recipe
    command, and uninterrupted; returns the two run directories `(killed, full)`.

    `options`: hooks options of the three runs; the resume then runs through the hooks
    script too (a recipe command cannot pin step times).
    """
    killed_dir, full_dir = tmp_path / "killed", tmp_path / "full"
    proc = hooks([f"--kill_at={kill_at}", *options], flags + [f"--model_dir={killed_dir}"],
                 env=env())
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not os.path.exists(killed_dir / "result.json")
    # Re-running the same command resumes.
    if options:
        proc = hooks(list(options), flags + [f"--model_dir={killed_dir}"], env=env())
    else:
        proc = recipe(flags + [f"--model_dir={killed_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = hooks(list(options), flags + [f"--model_dir={full_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result(full_dir)["resumed_from_step"] == 0
    a, b = model_weights(killed_dir), model_weights(full_dir)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    return killed_dir, full_dir


def test_sigkill_then_resume_an_adascale_run_matches_an_uninterrupted_run(tmp_path):
    # The gain is set every 2 steps (--steps_per_execution=2); the last checkpoint before the
    # kill is step 3, between two of them: the resumed run continues with the restored gain.
    # Also the suite's kill -9 after a step-numbered checkpoint (--checkpoint_every_steps);
    # the clock's is the next test's, and a plain run's history equality both of theirs.
    flags = FLAGS + ADASCALE + ["--strategy=one_device", "--deterministic",
                                "--steps_per_execution=2", "--checkpoint_every_steps=3"]
    killed_dir, full_dir = killed_resumed_and_full(tmp_path, flags, kill_at=4)
    resumed, full = result(killed_dir), result(full_dir)
    assert resumed["resumed_from_step"] == 3
    assert history(killed_dir) == history(full_dir)
    assert resumed["adascale"] == full["adascale"] and full["adascale"]["progress"] >= 24
    assert full["global_step"] < 24
    assert {h["gain"] for h in history(full_dir)["history"]} - {1.0}  # a gain above 1


def test_sigkill_then_resume_an_adaptive_batch_run_matches_an_uninterrupted_run(tmp_path):
    # Epochs at 16, 32 (explored), then 16 at SLOW times: steps 0-7, 8-11, 12-19, 20-...
    # Checkpoints every 5 steps; killed after step 17, resumed from 15: mid-epoch 2, after
    # its decision, before epoch 3's.
    flags = FLAGS + ADAPTIVE_BATCH + ["--strategy=one_device", "--deterministic",
                                      "--steps_per_execution=1", "--checkpoint_every_steps=5"]
    killed_dir, full_dir = killed_resumed_and_full(tmp_path, flags, kill_at=17, options=[SLOW])
    resumed, full = result(killed_dir), result(full_dir)
    assert resumed["resumed_from_step"] == 15
    epochs = full["batch_control"]["epochs"]
    assert epochs[:4] == [[0, 16], [8, 32], [12, 16], [20, 16]]
    assert resumed["batch_control"] == full["batch_control"]
    assert resumed["adascale"] == full["adascale"]
    assert history(killed_dir) == history(full_dir)
    assert [h["batch_size"] for h in history(full_dir)["history"]] == [b for _, b in epochs]


def history(model_dir, drop=("seconds",)):
    """history.json without the wall times (the one thing a resume may change)."""
    with open(os.path.join(model_dir, "history.json")) as f:
        saved = json.load(f)
    saved["history"] = [{k: v for k, v in h.items() if k not in drop}
                        for h in saved["history"]]
    return saved


def test_sigkill_mid_epoch_by_the_clock_resumes_with_the_same_history(tmp_path):
    # One step per call; after step 6 (mid-epoch 2) the hook sleeps past the 1 s clock, so
    # a checkpoint falls due there; the process is killed hard after step 7.
    flags = FLAGS + ["--strategy=one_device", "--deterministic", "--steps_per_execution=1",
                     "--checkpoint_every_seconds=1"]
    killed_dir, full_dir = tmp_path / "killed", tmp_path / "full"
    proc = hooks(["--sleep_at=6", "--kill_at=7"], flags + [f"--model_dir={killed_dir}"],
                 env=env())
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    proc = recipe(flags + [f"--model_dir={killed_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = result(killed_dir)
    assert resumed["resumed_from_step"] == 6  # inside epoch 2 (steps 5-8)
    proc = recipe(flags + [f"--model_dir={full_dir}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = result(full_dir)
    assert full["resumed_from_step"] == 0 and full["global_step"] == resumed["global_step"] == 12
    # Epoch 2's loss and accuracy are means over all four of its steps in both runs.
    assert history(killed_dir) == history(full_dir)
    assert len(history(full_dir)["history"]) == 3


@pytest.mark.slow
def test_sigterm_saves_step_numbered_checkpoints_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    flags = FLAGS + ["--strategy=one_device", f"--model_dir={run_dir}",
                     "--checkpoint_every_steps=1", "--keep_checkpoints=2"]
    proc = hooks(["--sigterm_at=5"], flags, env=env())
    assert proc.returncode == 42, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "PREEMPTED" in proc.stdout
    saved = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert saved is not None
    step = int(tf.train.load_checkpoint(saved).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert 5 <= step < 12 and saved.endswith(f"ckpt-{step}")
    # One manager wrote every checkpoint: step-numbered files only, at most keep_checkpoints.
    names = sorted(os.listdir(run_dir / "checkpoints"))
    numbers = set()
    for name in names:
        if name == "checkpoint":
            continue
        match = re.fullmatch(r"ckpt-(\d+)\.(index|data-\d+-of-\d+)", name)
        assert match, names
        numbers.add(int(match.group(1)))
    assert len(numbers) <= 2 and step in numbers, names
    assert os.path.exists(run_dir / "history.json")
    assert [h["step"] for h in history(run_dir)["history"]] == [4]
    proc = recipe(flags, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = result(run_dir)
    assert record["resumed_from_step"] == step and record["global_step"] == 12


@pytest.mark.slow
def test_logical_cpus_mirrored_from_the_command_line(tmp_path):
    proc = recipe(FLAGS + ["--strategy=mirrored", "--logical_cpus=2", "--export",
                           f"--export_dir={tmp_path / 'export'}",
                           f"--model_dir={tmp_path / 'run'}"], env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = result(tmp_path / "run")
    assert record["num_replicas"] == 2 and record["global_step"] == 12
    assert os.path.exists(tmp_path / "export" / "saved_model.pb")
    assert "Epoch 3/3" in proc.stdout
