"""`python -m tfgap.recipes.advise --model_fn=module:function` in a real subprocess."""

import json
import os
import subprocess
import sys
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

MODULE = '''
import keras
import numpy as np


def build():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=512) > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y
'''


def advise(tmp_path, *flags):
    (tmp_path / "tiny_user_model.py").write_text(MODULE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "tfgap.recipes.advise", *flags],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_model_fn_advises_for_the_users_model(tmp_path):
    out_dir = tmp_path / "out"
    result = advise(tmp_path, "--model_fn=tiny_user_model:build", "--batch_size=16",
                    "--epochs=2", "--max_batch_size=256", "--measure_steps=40",
                    f"--output_dir={out_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Recommended: batch" in result.stdout and "In model.fit: batch_size=" in result.stdout
    data = json.loads((out_dir / "advice.json").read_text())
    assert data["settings"]["model_fn"] == "tiny_user_model:build"
    assert data["settings"]["measure_steps"] == 40 and data["small_batch_size"] == 16
    assert data["recommended"] in data["candidates"]


def test_a_bad_reference_is_a_usage_error(tmp_path):
    result = advise(tmp_path, "--model_fn=foo")
    assert result.returncode == 2
    assert "Expected --model_fn as 'module:function'. Received: 'foo'" in result.stderr
    result = advise(tmp_path, "--model_fn=tiny_user_model:nothing")
    assert result.returncode == 2 and "Expected a function 'nothing'" in result.stderr
