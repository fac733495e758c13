"""Each recipe runs a few steps on mock data (one device and two mirrored CPUs) and exports
a SavedModel that a fresh process without tfgap reloads and serves at two batch sizes."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgap import data
from tfgap.recipes import recipe_flags
from tfgap.training import train

# Small networks keep the default suite fast; the recipes' default networks run under -m slow.
FAST = {"mnist": "--model=mlp", "cifar10": "--model=c1", "cifar100": "--model=c3"}
SLOW = {"mnist": "--model=f1", "cifar10": "--model=resnet44", "cifar100": "--model=wrn16_4"}
TINY = ["--mock_data", "--mock_examples=40", "--validation_examples=8", "--batch_size=16",
        "--base_batch_size=16",
        "--epochs=1", "--verbose=2", "--nopreemption"]


class KeepModel(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.kept = self.model


def run_recipe(recipe, model_flag, strategy, tmp_path, two_cpus, callbacks=(), export=True):
    extra = ["--model_options=mlp_width=16,mlp_depth=1"] if model_flag == "--model=mlp" else []
    output = [f"--export_dir={tmp_path / 'export'}"] if export else ["--noexport"]
    config = recipe_flags.parse(
        ["prog", model_flag, f"--strategy={strategy}", f"--model_dir={tmp_path / 'run'}"]
        + output + TINY + extra, recipe)
    result = train(config, strategy=two_cpus if strategy == "mirrored" else None,
                   callbacks=callbacks)
    assert result["global_step"] == 2 and result["num_replicas"] == (2 if strategy == "mirrored"
                                                                    else 1)
    assert result["test"]["accuracy"] is not None
    assert os.path.exists(os.path.join(tmp_path, "run", "result.json"))
    assert os.path.exists(os.path.join(tmp_path, "export", "tfgap_config.json")) == export
    return config


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return []


@pytest.mark.parametrize("strategy", ["one_device", "mirrored"])
@pytest.mark.parametrize("recipe", sorted(FAST))
def test_recipe_runs_and_exports(recipe, strategy, tmp_path, two_cpus, exports):
    keep = KeepModel()
    config = run_recipe(recipe, FAST[recipe], strategy, tmp_path, two_cpus, [keep])
    # Reference logits: the trained Keras model on the evaluation preprocessing.
    spec = data.get_spec(recipe)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(5, *spec.raw_shape)).astype(spec.raw_dtype)
    inputs = data.preprocess_for_eval(recipe, tf.constant(raw))
    expected = np.asarray(keep.kept(inputs, training=False))
    exports.append(dict(path=config.export_dir, raw=raw.tolist(), dtype=spec.raw_dtype,
                        logits=expected.tolist()))


def test_exports_reload_without_tfgap_and_serve_two_batch_sizes(exports, tmp_path):
    if not exports:
        pytest.skip("no export ran")
    spec_path = tmp_path / "exports.json"
    spec_path.write_text(json.dumps(exports))
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf
        for item in json.load(open(sys.argv[1])):
            served = tf.saved_model.load(item["path"]).signatures["serving_default"]
            raw = np.asarray(item["raw"], item["dtype"])
            for n in (1, 5):
                out = served(images=tf.constant(raw[:n]))
                probs = out["probabilities"].numpy()
                assert probs.shape[0] == n, probs.shape
                np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
                np.testing.assert_allclose(out["logits"].numpy(),
                                           np.asarray(item["logits"])[:n], rtol=1e-4, atol=1e-4)
        assert "tfgap" not in sys.modules
        print("SERVED", len(json.load(open(sys.argv[1]))))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(spec_path)], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path),
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"SERVED {len(exports)}" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "strategy"), [
    ("cifar10", "one_device"), ("cifar100", "mirrored"), ("mnist", "mirrored")])
def test_recipe_default_network(recipe, strategy, tmp_path, two_cpus):
    # Each recipe's default (deep) network once, under one strategy or the other: the
    # strategies themselves are the small networks' test's (above, both for every recipe),
    # and ResNet-44 under MirroredStrategy took 70 s of the suite on 2 cores. The export path
    # is the small networks' test's and the ImageNet recipe's (AlexNet-BN); tracing a deep
    # network's SavedModel here would double the test's time.
    run_recipe(recipe, SLOW[recipe], strategy, tmp_path, two_cpus, export=False)
