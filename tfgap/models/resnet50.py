"""ResNet-50 for ImageNet, bottleneck v1.5 (He et al. 2016; torchvision's layout).

    conv 7x7/2, 64 (pad 3) -> norm -> ReLU -> maxpool 3x3/2 (pad 1)
    4 stages of 3 / 4 / 6 / 3 bottleneck blocks, widths 64 / 128 / 256 / 512
        (outputs 4x wider), stride 2 entering stages 2-4
    global average pool -> dense num_classes

A bottleneck block, v1.5: the stride sits on the 3x3 convolution (v1, the
paper's and `keras.applications.ResNet50`'s, puts it on the first 1x1). Same
parameter count; NVIDIA reports about 0.5% better top-1 (torchvision's layout):

    y = norm(conv1x1(relu(norm(conv3x3_s(relu(norm(conv1x1(x))))))))
    out = relu(y + (x or norm(conv1x1_s(x))))

25,557,032 trainable parameters with 1000 classes (torchvision's
`resnet50`; convolutions have no bias). Stride-2 convolutions and the max-pool
are padded symmetrically as in PyTorch. Any input size works (global pooling).

`zero_init_residual=True` starts the last norm layer of every block with
gamma = 0 (Goyal et al. 2017); default False, as in Hoffer et al.'s code.
"""

import keras

from tfgap.models.resnet_cifar import conv3x3

_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def _bottleneck(factory, x, width, *, strides, zero_init_residual, name):
    filters = 4 * width
    y = factory.conv(width, 1, name=f"{name}_conv1")(x)
    y = factory.norm(f"{name}_norm1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv3x3(factory, width, strides=strides, name=f"{name}_conv2")(y)
    y = factory.norm(f"{name}_norm2")(y)
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = factory.conv(filters, 1, name=f"{name}_conv3")(y)
    y = factory.norm(f"{name}_norm3", zero_gamma=zero_init_residual)(y)
    if strides != 1 or x.shape[-1] != filters:
        x = factory.conv(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
        x = factory.norm(f"{name}_shortcut_norm")(x)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet50(factory, *, num_classes, input_shape, zero_init_residual=False):
    """ResNet-50 v1.5; see the module docstring.

    Args:
        zero_init_residual: bool, gamma = 0 in the last norm layer of each block.
    """
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = keras.layers.ZeroPadding2D(3, name="stem_pad")(inputs)
    x = factory.conv(64, 7, strides=2, padding="valid", name="stem_conv")(x)
    x = factory.norm("stem_norm")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    # Zero padding is harmless before the max-pool: its inputs are >= 0 (ReLU).
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (width, blocks) in enumerate(_STAGES, start=1):
        for block in range(1, blocks + 1):
            x = _bottleneck(
                factory,
                x,
                width,
                strides=2 if (stage > 1 and block == 1) else 1,
                zero_init_residual=bool(zero_init_residual),
                name=f"stage{stage}_block{block}",
            )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name="resnet50")
