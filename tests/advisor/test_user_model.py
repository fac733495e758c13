"""`advise_model` on a user's compiled model: the doc example runs, the model is untouched,
datasets work, and bad input names what was received."""

import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgap import advisor
from tfgap.advisor.user_model import curvature_batch_size, measurement_steps

ROOT = pathlib.Path(__file__).resolve().parents[2]


def doc_example():
    text = (ROOT / "docs" / "advisor.md").read_text()
    section = text[text.index("### Advice for your own model"):
                   text.index("### Statistics from training")]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_example_runs_and_leaves_a_model_fit_can_use(capsys):
    namespace = {}
    exec(compile(doc_example(), "docs/advisor.md", "exec"), namespace)  # noqa: S102
    advice, fit = namespace["advice"], namespace["fit"]
    out = capsys.readouterr().out
    assert "Recommended: batch" in out and "Rule: recommend the candidate closest" in out
    assert advice.settings["measure_steps"] == measurement_steps(2000 // 16) == 250
    assert fit["batch_size"] == advice.recommended.batch_size
    assert isinstance(fit["learning_rate"], keras.optimizers.schedules.LearningRateSchedule)
    assert advice.b_crit_source == "b_simple" and advice.b_crit == advice.b_simple
    assert advice.learning_rate_rule == "gain" and advice.momentum == 0.9


def small_problem(n=256):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, y


def test_a_dataset_and_the_model_left_as_it_was():
    model, x, y = small_problem()
    before = [np.array(v.numpy()) for v in model.variables]
    iterations = int(model.optimizer.iterations.numpy())
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256, seed=0).batch(16)
    advice = advisor.advise_model(model, dataset, batch_size=16, max_batch_size=128, epochs=3,
                                  steps=30, num_draws=4)
    assert advice.num_train_examples == 256 and advice.settings["measure_steps"] == 30
    # Adam: AdaScale's gain (an SGD step) does not apply; the sqrt rule, said so.
    assert advice.learning_rate_rule == "sqrt" and "not SGD" in advice.learning_rate_reason
    assert advice.recommended.ghost_batch_size or advice.recommended.batch_size == 16
    for v, old in zip(model.variables, before):
        np.testing.assert_array_equal(v.numpy(), old)
    assert int(model.optimizer.iterations.numpy()) == iterations


def test_bad_input_names_what_was_received():
    model, x, y = small_problem(64)
    raw = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    common = dict(batch_size=16, max_batch_size=64, epochs=1)
    cases = [
        (lambda: advisor.advise_model(raw, x, y, **common), r"compiled model.*not compiled"),
        (lambda: advisor.advise_model(model, x, None, **common), r"targets `y`.*y=None"),
        (lambda: advisor.advise_model(model, x, y, **dict(common, batch_size=0)),
         r"batch_size.*>= 1.*batch_size=0"),
        (lambda: advisor.advise_model(model, x, y, **dict(common, batch_size=16.0)),
         r"batch_size=16.0"),
        (lambda: advisor.advise_model(model, x, y, **dict(common, max_batch_size=8)),
         r"max_batch_size >= batch_size=16.*max_batch_size=8"),
        (lambda: advisor.advise_model(model, tf.data.Dataset.from_tensor_slices((x, y)),
                                      **common), r"unbatched"),
        (lambda: advisor.advise_model(model, tf.data.Dataset.from_tensor_slices(x).batch(16),
                                      **common), r"labelled batches"),
        (lambda: advisor.advise_model(model, batched, **dict(common, batch_size=8)),
         r"batched by batch_size=8.*first batch of 16"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_the_automatic_lengths():
    assert [measurement_steps(s) for s in (None, 10, 200, 5000)] == [1000, 100, 400, 1000]
    assert curvature_batch_size(16, 125.6, 2000) == 128     # 128 / 125.6 beats 125.6 / 64
    assert curvature_batch_size(16, 3.0, 2000) == 16         # never below the batch
    assert curvature_batch_size(16, 1e6, 400) == 64          # five batches fit the data
