import keras
import numpy as np
import pytest

from tfgap.models import build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, dense, norm, trainable_count,
)


def test_f1_structure():
    model = build_model("f1", num_classes=10, input_shape=(28, 28, 1), ghost_batch_size=32,
                        weight_decay=1e-4, seed=0)
    # 784-5x[512, BN, ReLU]-10, hidden layers without bias (the norm cancels it).
    expected = dense(784, 512) + 4 * dense(512, 512) + dense(512, 10, bias=True) + 5 * norm(512)
    assert expected == 1_460_234
    assert trainable_count(model) == expected
    assert_norms(model, 5, 32)
    assert_weight_decay(model, 1e-4)
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("width, depth", [(256, 3), (64, 2)])
def test_mlp_structure(width, depth):
    model = build_model("mlp", num_classes=10, input_shape=(40,), mlp_width=width,
                        mlp_depth=depth, weight_decay=3e-4, seed=0)
    expected = (dense(40, width) + (depth - 1) * dense(width, width)
                + dense(width, 10, bias=True) + depth * norm(width))
    assert trainable_count(model) == expected
    if (width, depth) == (256, 3):
        assert expected == 145_418
    assert_norms(model, depth, None)
    assert_weight_decay(model, 3e-4)
    out = model(np.zeros((6, 40), "float32"), training=False)
    assert tuple(out.shape) == (6, 10) and out.dtype == "float32"


def test_mlp_accepts_rank2_input_shape():
    model = build_model("mlp", num_classes=3, input_shape=(40, 1), mlp_width=8)
    assert model.output_shape == (None, 3)


def test_mlp_fit_learns_with_ghost_batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 40)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    model = build_model("mlp", num_classes=2, input_shape=(40,), ghost_batch_size=16,
                        weight_decay=1e-4, mlp_width=64, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
