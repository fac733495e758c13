"""Wide ResNet 16-4 for CIFAR (Zagoruyko & Komodakis 2016), pre-activation.

    conv 3x3, 16
    3 groups x 2 blocks, 64 / 128 / 256 filters (16k, 32k, 64k with k = 4;
        stride 2 entering groups 2 and 3)
    norm -> ReLU -> global average pool -> dense num_classes

A pre-activation block (He et al. 2016b; Zagoruyko's "B(3,3)"):

    a = relu(norm(x))
    y = conv3x3(dropout(relu(norm(conv3x3(a)))))
    out = y + (x if the shape is kept else conv1x1(a))

Depth 16 = 6n + 4 with n = 2 blocks per group, widening factor k = 4: about
2.75M parameters (2,772,020 trainable with 100 classes). Hoffer et al. 2017
train it on CIFAR-100 (their reference code uses a post-activation variant).

`dropout_rate` (default 0, as in Hoffer et al.; Zagoruyko's best used 0.3)
sits between the two convolutions of each block.
"""

import keras

from tfgap.models.resnet_cifar import conv3x3


def _block(factory, x, filters, *, strides, dropout_rate, name):
    a = factory.norm(f"{name}_norm1")(x)
    a = keras.layers.ReLU(name=f"{name}_relu1")(a)
    y = conv3x3(factory, filters, strides=strides, name=f"{name}_conv1")(a)
    y = factory.norm(f"{name}_norm2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    if dropout_rate > 0:
        y = factory.dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = conv3x3(factory, filters, strides=1, name=f"{name}_conv2")(y)
    if strides != 1 or x.shape[-1] != filters:
        x = factory.conv(filters, 1, strides=strides, name=f"{name}_shortcut")(a)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def wrn16_4(factory, *, num_classes, input_shape, dropout_rate=0.0):
    """WRN-16-4; see the module docstring.

    Args:
        dropout_rate: float in [0, 1), dropout between the convolutions of a
            block (default 0).
    """
    if isinstance(dropout_rate, bool) or not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(
            f"Expected `dropout_rate` in [0, 1). Received: dropout_rate={dropout_rate!r}"
        )
    dropout_rate = float(dropout_rate)
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = factory.conv(16, 3, name="stem_conv")(inputs)
    for group, filters in enumerate((64, 128, 256), start=1):
        for block in (1, 2):
            x = _block(
                factory,
                x,
                filters,
                strides=2 if (group > 1 and block == 1) else 1,
                dropout_rate=dropout_rate,
                name=f"group{group}_block{block}",
            )
    x = factory.norm("final_norm")(x)
    x = keras.layers.ReLU(name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name="wrn16_4")
