import numpy as np

from tfgap.models import build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, conv, dense, norm, trainable_count,
)


def resnet50_count(classes):
    total, cin = conv(7, 3, 64) + norm(64), 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for _ in range(blocks):
            total += (conv(1, cin, width) + conv(3, width, width) + conv(1, width, 4 * width)
                      + 2 * norm(width) + norm(4 * width))
            if cin != 4 * width:
                total += conv(1, cin, 4 * width) + norm(4 * width)
            cin = 4 * width
    return total + dense(cin, classes, bias=True)


def test_resnet50_imagenet():
    model = build_model("resnet50", num_classes=1000, input_shape=(224, 224, 3),
                        ghost_batch_size=32, weight_decay=1e-4, seed=0)
    assert resnet50_count(1000) == 25_557_032  # torchvision's resnet50
    assert trainable_count(model) == resnet50_count(1000)
    assert_norms(model, 53, 32)
    assert model.output_shape == (None, 1000)
    assert model.get_layer("avg_pool").input.shape[1:] == (7, 7, 2048)
    # v1.5: the stride of a downsampling block sits on its 3x3 convolution.
    assert model.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert model.get_layer("stage2_block1_conv2").strides == (2, 2)


def test_resnet50_small_input_forward():
    model = build_model("resnet50", num_classes=10, input_shape=(32, 32, 3), ghost_batch_size=2,
                        weight_decay=1e-4, zero_init_residual=True, seed=0)
    assert trainable_count(model) == resnet50_count(10)
    assert_weight_decay(model, 1e-4)
    gammas = [np.asarray(model.get_layer(f"stage1_block{i}_norm3").gamma) for i in (1, 2, 3)]
    assert all(np.all(g == 0) for g in gammas)
    out = model(np.ones((4, 32, 32, 3), "float32"), training=True)
    assert tuple(out.shape) == (4, 10) and np.all(np.isfinite(np.asarray(out)))
