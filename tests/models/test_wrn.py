import numpy as np

from tfgap.models import build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, conv, dense, norm, trainable_count,
)


def wrn_count(depth, k, classes):
    n = (depth - 4) // 6
    total, cin = conv(3, 3, 16), 16
    for filters in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += norm(cin) + conv(3, cin, filters) + norm(filters) + conv(3, filters, filters)
            if cin != filters:
                total += conv(1, cin, filters)
            cin = filters
    return total + norm(cin) + dense(cin, classes, bias=True)


def test_wrn16_4_structure():
    model = build_model("wrn16_4", num_classes=100, input_shape=(32, 32, 3), ghost_batch_size=64,
                        weight_decay=1e-4, seed=0)
    expected = wrn_count(16, 4, 100)
    assert expected == 2_772_020  # Zagoruyko & Komodakis 2016: 2.7M
    assert trainable_count(model) == expected
    assert_norms(model, 13, 64)
    assert_weight_decay(model, 1e-4)
    assert model.output_shape == (None, 100)


def test_wrn16_4_dropout_option_and_forward():
    model = build_model("wrn16_4", num_classes=10, input_shape=(8, 8, 3), ghost_batch_size=2,
                        dropout_rate=0.3, seed=0)
    rates = [l.rate for l in model.layers if type(l).__name__ == "Dropout"]
    assert rates == [0.3] * 6
    assert trainable_count(model) == wrn_count(16, 4, 10)
    out = model(np.ones((4, 8, 8, 3), "float32"), training=True)
    assert tuple(out.shape) == (4, 10) and np.all(np.isfinite(np.asarray(out)))
