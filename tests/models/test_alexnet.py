import numpy as np

from tfgap.models import build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, conv, dense, norm, trainable_count,
)


def alexnet_count(size, classes):
    s = (size + 2 * 2 - 11) // 4 + 1  # conv1 11x11/4, pad 2
    for _ in range(3):  # pool1, pool2 (conv2 keeps the size), pool5 (conv3-5 keep it)
        s = (s - 3) // 2 + 1
    return (conv(11, 3, 64) + conv(5, 64, 192) + conv(3, 192, 384) + conv(3, 384, 256)
            + conv(3, 256, 256) + norm(64) + norm(192) + norm(384) + 2 * norm(256)
            + dense(s * s * 256, 4096) + dense(4096, 4096) + 2 * norm(4096)
            + dense(4096, classes, bias=True))


def test_alexnet_small_input():
    model = build_model("alexnet_bn", num_classes=10, input_shape=(64, 64, 3),
                        ghost_batch_size=2, weight_decay=5e-4, seed=0)
    assert trainable_count(model) == alexnet_count(64, 10)
    assert_norms(model, 7, 2)
    assert_weight_decay(model, 5e-4)
    out = model(np.ones((4, 64, 64, 3), "float32"), training=True)
    assert tuple(out.shape) == (4, 10)


def test_alexnet_imagenet_count():
    model = build_model("alexnet_bn", num_classes=1000, input_shape=(224, 224, 3))
    assert model.get_layer("flatten").input.shape[1:] == (6, 6, 256)
    assert trainable_count(model) == alexnet_count(224, 1000) == 61_110_184
