"""AlexNet with Batch Normalization, as in Hoffer et al. 2017's ImageNet runs.

The "one weird trick" AlexNet (Krizhevsky 2014) with a norm layer after every
convolution and after the two hidden dense layers, layer for layer as the
`AlexNetOWT_BN` of Hoffer's reference code (convNet.pytorch):

    conv 11x11/4, 64 (pad 2) -> maxpool 3/2 -> norm -> ReLU
    conv 5x5, 192 (pad 2)    -> maxpool 3/2 -> ReLU -> norm
    conv 3x3, 384            -> ReLU -> norm
    conv 3x3, 256            -> ReLU -> norm
    conv 3x3, 256            -> maxpool 3/2 -> ReLU -> norm
    flatten -> dense 4096 -> norm -> ReLU -> dropout 0.5
            -> dense 4096 -> norm -> ReLU -> dropout 0.5 -> dense num_classes

(The reference applies ReLU before the norm layer from the second convolution
on; kept as is.) On 224x224x3 inputs the last feature map is 6x6x256 and the
network has 61.1M parameters (61,110,184 trainable with 1000 classes). Inputs
must be at least 63x63. Default regime (Hoffer et al.): SGD lr 1e-2, momentum
0.9, weight decay 5e-4.
"""

import keras

_MIN_SIZE = 63


def alexnet_bn(factory, *, num_classes, input_shape):
    """AlexNet-BN; see the module docstring."""
    if min(input_shape[:2]) < _MIN_SIZE:
        raise ValueError(
            f"Expected an input of at least {_MIN_SIZE}x{_MIN_SIZE} pixels for alexnet_bn "
            f"(three 3x3/2 max-pools). Received: input_shape={tuple(input_shape)}"
        )
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = keras.layers.ZeroPadding2D(2, name="conv1_pad")(inputs)
    x = factory.conv(64, 11, strides=4, padding="valid", name="conv1")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = factory.norm("conv1_norm")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)

    x = factory.conv(192, 5, name="conv2")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = keras.layers.ReLU(name="conv2_relu")(x)
    x = factory.norm("conv2_norm")(x)

    for i, filters in ((3, 384), (4, 256), (5, 256)):
        x = factory.conv(filters, 3, name=f"conv{i}")(x)
        if i == 5:
            x = keras.layers.MaxPooling2D(3, strides=2, name="pool5")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = factory.norm(f"conv{i}_norm")(x)

    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = factory.dense(4096, name=f"dense{i}")(x)
        x = factory.norm(f"dense{i}_norm")(x)
        x = keras.layers.ReLU(name=f"dense{i}_relu")(x)
        x = factory.dropout(0.5, name=f"dense{i}_dropout")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name="alexnet_bn")
