"""The search chooses on validation, never on test, and names trials as Keras Tuner prints
them; a two-trial search on mock data under two mirrored CPUs: the trials train with different
ghost batch sizes, a re-run resumes without new trials, the best config runs, the best trial's
network is exported, and the tune command's best flagfile runs with its recipe."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfgap import data, models
from tfgap.layers import GhostBatchNormalization
from tfgap.recipes import recipe_flags
from tfgap.training import ExportPathError, TrainConfig, read_result
from tfgap.tuning import (
    OBJECTIVE,
    GhostBatchHyperModel,
    finish_search,
    make_tuner,
    run_search,
    trial_number,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 71 mock examples: 7 (a tenth, floor) held out for validation, 64 = two batches trained on.
FLAGS = ["--model=mlp", "--model_options=mlp_width=16,mlp_depth=2", "--mock_data",
         "--mock_examples=71", "--batch_size=32", "--epochs=1", "--nopreemption",
         "--verbose=0", "--noexport"]


# Crafted end-of-run accuracies per ghost batch size: the best on validation (8) is not the
# best on test (0), and the test ranking is the reverse of the validation ranking at the top.
CRAFTED = {0: (0.70, 0.90), 8: (0.80, 0.60), 16: (0.75, 0.85), 32: (0.60, 0.70)}


class CraftedHyperModel(GhostBatchHyperModel):
    """The real search space and tuner; `fit` reports crafted (val, test) accuracies."""

    def fit(self, hp, model, *args, trial_id=None, **kwargs):
        val, test = CRAFTED[hp.get("ghost_batch_size")]
        return {"val_accuracy": val, "val_loss": 1.0 - val,
                "test_accuracy": test, "test_loss": 1.0 - test}


def keras_tuners_own_numbers(printed):
    """{N: ghost_batch_size} from Keras Tuner's "Search: Running Trial #N" and its table."""
    numbers, current = {}, None
    for line in printed.splitlines():
        if line.startswith("Search: Running Trial #"):
            current = int(line.rsplit("#", 1)[1])
        elif current is not None and line.endswith("|ghost_batch_size"):
            numbers[current] = int(line.split("|")[0])
            current = None
    return numbers


def summary_trials(text):
    """[(N, trial_id, val_accuracy, ghost_batch_size)] of the summary's trial lines, in order."""
    found = []
    for line in text.splitlines():
        if line.startswith("  Trial #"):
            head, rest = line.split("): ", 1)
            number, trial_id = head[len("  Trial #"):].split(" (trial_id ")
            ghost = rest.split("ghost_batch_size=")[1].split(",")[0]
            found.append((int(number), trial_id, rest.split(f"{OBJECTIVE}=")[1][:6], int(ghost)))
    return found


def test_chosen_trial_is_the_best_on_validation_not_on_test(tmp_path, capsys):
    config = TrainConfig(dataset="mnist", model="mlp", model_dir=str(tmp_path / "unused"),
                         epochs=1, batch_size=64, mock_data=True, mock_examples=64,
                         model_options={"mlp_width": 8})
    hypermodel = CraftedHyperModel(config, trials_dir=str(tmp_path / "trials"),
                                   min_ghost_batch_size=8, lr_multiplier_range=(1.0, 1.0))
    assert hypermodel.ghost_choices == sorted(CRAFTED)
    tuner = make_tuner("random", hypermodel, directory=str(tmp_path), max_trials=10, seed=0)
    tuner.search()
    keras_tuner_says = keras_tuners_own_numbers(capsys.readouterr().out)
    assert sorted(keras_tuner_says) == [1, 2, 3, 4]
    out = io.StringIO()
    found = finish_search(tuner, model_dir=str(tmp_path), kind="random", stream=out)
    # Every candidate was tried, each trial recorded both numbers.
    tried = {t["values"]["ghost_batch_size"]: (t["score"], t["test_accuracy"])
             for t in found["trials"]}
    assert sorted(tried) == sorted(CRAFTED)
    for ghost, numbers in CRAFTED.items():
        assert tried[ghost] == pytest.approx(numbers)
    best_val = max(CRAFTED, key=lambda g: CRAFTED[g][0])
    best_test = max(CRAFTED, key=lambda g: CRAFTED[g][1])
    assert (best_val, best_test) == (8, 0)  # the two disagree
    assert found["best_hyperparameters"]["ghost_batch_size"] == best_val
    assert found["best_config"].ghost_batch_size == best_val
    assert found["best_score"] == pytest.approx(0.80)
    assert found["best_test_accuracy"] == pytest.approx(0.60)
    # The summary ranks by validation and prints one test number: the chosen trial's.
    text = out.getvalue()
    assert f"objective {OBJECTIVE}" in text and OBJECTIVE == "val_accuracy"
    ranked = summary_trials(text)
    assert [score for _, _, score, _ in ranked] == ["0.8000", "0.7500", "0.7000", "0.6000"]
    # "Trial #N" is the trial Keras Tuner's own "Search: Running Trial #N" announced; its
    # trial_id (max_trials=10: two digits) counts from 0.
    for number, trial_id, _, ghost in ranked:
        assert keras_tuner_says[number] == ghost
        assert trial_id == f"{number - 1:02d}" and trial_number(tuner.oracle, trial_id) == number
    assert {(t["number"], t["trial_id"]) for t in found["trials"]} == \
        {(n, i) for n, i, _, _ in ranked}
    best_number = next(n for n, _, _, ghost in ranked if ghost == best_val)
    assert found["best_trial"]["number"] == best_number
    assert f"Best: Trial #{best_number} (trial_id {best_number - 1:02d}): " in text
    held_out = [line for line in text.splitlines() if "test accuracy" in line.lower()]
    assert held_out == ["Held-out test accuracy of the chosen trial (not used for the choice): "
                        "0.6000"]
    assert "0.9000" not in text and "0.8500" not in text
    with open(found["config_file"]) as f:
        best = TrainConfig.from_dict(json.load(f))
    assert best == found["best_config"] and best.ghost_batch_size == best_val
    assert found["config_file"] == str(tmp_path / "best_config.json")


def test_trial_number_of_an_unknown_trial_is_an_error():
    class Oracle:
        start_order = ("0", "1")

    with pytest.raises(ValueError, match=r"one of \['0', '1'\]\. Received: trial_id='7'"):
        trial_number(Oracle(), "7")


def test_a_config_without_validation_split_is_refused(tmp_path):
    config = TrainConfig(dataset="mnist", model="mlp", model_dir=str(tmp_path), epochs=1,
                         batch_size=64, validation_examples=0, model_options={"mlp_width": 8})
    with pytest.raises(ValueError, match="validation_examples=0"):
        GhostBatchHyperModel(config, trials_dir=str(tmp_path))


def ghost_sizes(model):
    return {layer.virtual_batch_size for layer in model.layers
            if isinstance(layer, GhostBatchNormalization)}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, two_cpus):
    model_dir = str(tmp_path_factory.mktemp("tune"))
    config = recipe_flags.parse(["prog", *FLAGS], "mnist")
    kwargs = dict(model_dir=model_dir, kind="random", max_trials=2, strategy=two_cpus,
                  min_ghost_batch_size=8, lr_multiplier_range=(1.0, 1.0))
    out = io.StringIO()
    first = run_search(config, stream=out, **kwargs)
    return config, kwargs, first, out.getvalue()


def test_trials_train_with_different_ghost_batch_sizes(searched):
    config, _, first, summary = searched
    trials = first["trials"]
    # 32 over 2 replicas: per-replica 16, candidates {0 (plain BN), 8}; two trials try both.
    assert sorted(t["values"]["ghost_batch_size"] for t in trials) == [0, 8]
    tuner = first["tuner"]
    spec = data.get_spec("mnist")
    for t in trials:
        ghost = t["values"]["ghost_batch_size"]
        result = read_result(t["model_dir"])
        assert result["config"]["ghost_batch_size"] == ghost
        assert result["num_replicas"] == 2 and result["global_step"] == 64 // 32
        assert (result["num_train_examples"], result["num_validation_examples"]) == (64, 7)
        # The score is the end-of-run validation accuracy; test accuracy is only recorded.
        assert t["score"] == pytest.approx(result["validation"]["accuracy"])
        assert t["test_accuracy"] == pytest.approx(result["test"]["accuracy"])
        # The trained model, read back from the tuner's checkpoint of the trial.
        trained = tuner.load_model(tuner.oracle.get_trial(t["trial_id"]))
        assert ghost_sizes(trained) == {ghost or None}
        fresh = models.build_model("mlp", num_classes=10, input_shape=spec.input_shape,
                                   ghost_batch_size=ghost, seed=config.seed,
                                   **config.model_options)
        moved = [not np.allclose(a, b) for a, b in zip(trained.get_weights(), fresh.get_weights())]
        assert sum(moved) >= len(moved) // 2  # kernels and moving statistics were trained
    # Two trials: Trial #1 ran in trials/0, Trial #2 in trials/1 (max_trials=2: one digit).
    assert sorted((t["number"], t["trial_id"]) for t in trials) == [(1, "0"), (2, "1")]
    assert all(t["model_dir"] == os.path.join(os.path.dirname(t["model_dir"]), t["trial_id"])
               for t in trials)
    best = max(trials, key=lambda t: t["score"])
    assert first["best_trial"] == best
    assert (f"Best: Trial #{best['number']} (trial_id {best['trial_id']}): ghost_batch_size="
            f"{best['values']['ghost_batch_size']}, ") in summary
    assert f"; run: {best['model_dir']}; config: " in summary
    assert first["export_dir"] is None
    assert first["best_test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert summary.count("Held-out test accuracy of the chosen trial") == 1


def test_rerun_resumes_without_new_trials(searched):
    config, kwargs, first, _ = searched
    stamps = {t["trial_id"]: os.path.getmtime(os.path.join(t["model_dir"], "result.json"))
              for t in first["trials"]}
    out = io.StringIO()
    again = run_search(config, stream=out, **kwargs)
    assert len(again["tuner"].oracle.trials) == 2
    assert {t["trial_id"]: t["score"] for t in again["trials"]} == \
        {t["trial_id"]: t["score"] for t in first["trials"]}
    for t in again["trials"]:
        assert os.path.getmtime(os.path.join(t["model_dir"], "result.json")) == \
            stamps[t["trial_id"]]
    assert sorted(os.listdir(os.path.join(kwargs["model_dir"], "trials"))) == sorted(stamps)


def test_best_config_is_the_base_config_with_the_best_trials_values(searched):
    config, _, first, _ = searched
    with open(first["config_file"]) as f:
        best = TrainConfig.from_dict(json.load(f))
    best_trial = max(first["trials"], key=lambda t: t["score"])
    assert best.ghost_batch_size == best_trial["values"]["ghost_batch_size"]
    assert best == config.replace(ghost_batch_size=best.ghost_batch_size,
                                  lr_multiplier=best.lr_multiplier,
                                  regime_adaptation=best.regime_adaptation)


def test_best_trial_is_exported(searched, tmp_path):
    """The best trial's checkpoint, restored into its network, serves raw images."""
    _, kwargs, first, _ = searched
    tuner, best = first["tuner"], first["best_trial"]
    export_dir = str(tmp_path / "best_model")
    found = finish_search(tuner, model_dir=kwargs["model_dir"], kind="random",
                          stream=io.StringIO(), export_dir=export_dir)
    assert found["export_dir"] == export_dir
    served = tf.saved_model.load(export_dir)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28, 1), dtype=np.uint8)
    out = served.signatures["serving_default"](images=tf.constant(images))
    # One epoch, evaluated: Keras Tuner's best-epoch checkpoint is the run's end too.
    trained = tuner.load_model(tuner.oracle.get_trial(best["trial_id"]))
    expected = trained(data.preprocess_for_eval("mnist", tf.constant(images)), training=False)
    np.testing.assert_allclose(out["logits"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # Beside it, the config the trial ran (its run directory, its ghost batch size).
    with open(os.path.join(export_dir, "tfgap_config.json")) as f:
        written = json.load(f)
    assert written == dict(read_result(best["model_dir"])["config"], export_dir=export_dir)
    assert written["ghost_batch_size"] == best["values"]["ghost_batch_size"]


def test_an_export_into_the_search_directory_is_refused_before_any_trial(searched, tmp_path):
    config, kwargs, first, _ = searched
    inside = os.path.join(kwargs["model_dir"], "trials", "model")
    with pytest.raises(ExportPathError, match="protected path"):
        finish_search(first["tuner"], model_dir=kwargs["model_dir"], kind="random",
                      stream=io.StringIO(), export_dir=inside)
    fresh = str(tmp_path / "fresh")
    with pytest.raises(ExportPathError, match="protected path"):
        run_search(config, **dict(kwargs, model_dir=fresh, export_dir=os.path.join(fresh, "m")))
    assert not os.path.exists(inside) and not os.path.exists(fresh)


def test_tune_command_line_with_hyperband(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    export_dir = tmp_path / "best_model"
    args = [sys.executable, "-m", "tfgap.recipes.tune", "--recipe=mnist", "--max_trials=1",
            "--tuner=hyperband", "--min_ghost_batch_size=8", "--lr_multiplier_min=0.5",
            "--lr_multiplier_max=2", f"--model_dir={tmp_path / 'tune'}",
            f"--best_flagfile={tmp_path / 'best.flags'}", f"--export_dir={export_dir}",
            *[flag for flag in FLAGS if flag != "--noexport"]]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best: Trial #1 (trial_id 0): ghost_batch_size=" in proc.stdout
    assert "val_accuracy=" in proc.stdout
    assert proc.stdout.count("Held-out test accuracy of the chosen trial") == 1
    assert len(os.listdir(tmp_path / "tune" / "trials")) == 1
    # The best flagfile runs with the recipe: the tuned values over the command's flags.
    path = tmp_path / "best.flags"
    best = recipe_flags.parse(["prog", f"--flagfile={path}"], "mnist")
    assert best.ghost_batch_size in (0, 8, 16) and 0.5 <= best.lr_multiplier <= 2
    assert (best.model, best.model_options, best.batch_size) == \
        ("mlp", {"mlp_depth": 2, "mlp_width": 16}, 32)
    assert best.mock_data and "--noexport" not in path.read_text()
    lines = path.read_text().splitlines()
    assert lines[0] == f"# Run: python -m tfgap.recipes.mnist --flagfile={path}"
    assert "chosen on the validation split: val_accuracy" in lines[1]
    # The one trial: Keras Tuner's "Trial #1", trial_id 0, run in trials/0.
    assert "Search: Running Trial #1" in proc.stdout and "Trial #1 (trial_id 0)" in proc.stdout
    assert lines[2] == ("# The best is Trial #1 (Keras Tuner's numbering, from 1; trial_id 0), "
                        f"run in {tmp_path / 'tune' / 'trials' / '0'}.")
    assert not any("test_accuracy" in line for line in lines)
    # The same setting as the library's best config (but for the run and export directories).
    config_json = tmp_path / "tune" / "best_config.json"
    from_json = TrainConfig.from_dict(json.loads(config_json.read_text()))
    assert from_json == best.replace(model_dir=from_json.model_dir,
                                     export_dir=from_json.export_dir)
    assert proc.stdout.splitlines()[-3:] == [f"Wrote best config:     {config_json}",
                                             f"Wrote best flagfile:   {path}",
                                             f"Wrote best SavedModel: {export_dir}"]
    # The best trial's network, exported: it serves raw MNIST images.
    with open(export_dir / "tfgap_config.json") as f:
        exported = json.load(f)
    assert exported["model_dir"] == str(tmp_path / "tune" / "trials" / "0")
    assert exported["ghost_batch_size"] == best.ghost_batch_size
    served = tf.saved_model.load(str(export_dir))
    out = served.signatures["serving_default"](images=tf.zeros([3, 28, 28, 1], tf.uint8))
    assert out["probabilities"].shape == (3, 10)

    bad = subprocess.run([*args[:3], "--max_trials=1", "--recipe=nope"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "usage error" in bad.stderr and "Traceback" not in bad.stderr

    # Without a validation split the tuner could only choose on test: refused before any trial.
    no_val = subprocess.run([*args, "--validation_examples=0", f"--model_dir={tmp_path / 'nv'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert no_val.returncode == 2 and "validation_examples=0" in no_val.stderr
    assert "Traceback" not in no_val.stderr and not (tmp_path / "nv" / "trials").exists()
