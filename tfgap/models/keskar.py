"""Keskar et al.'s convolutional networks: the shallow C1/C3 and the VGG-like C2/C4.

Paper: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, "On Large-Batch
Training for Deep Learning: Generalization Gap and Sharp Minima" (Table 1);
the layer lists follow the authors' Keras code (`network_zoo.py`,
`shallownet` and `deepnet`). C1 and C3 are the same network (CIFAR-10 and
CIFAR-100), as are C2 and C4; only `num_classes` differs.

C1/C3 ("shallow"):

    2 x [conv 5x5, 64 -> norm -> ReLU -> maxpool 3x3 stride 2 ("same")]
    flatten -> dense 384 -> norm -> ReLU -> dropout 0.5
            -> dense 192 -> norm -> ReLU -> dropout 0.5 -> dense num_classes

C2/C4 ("deep", the VGG-16 of Zagoruyko's cifar.torch): 13 x [conv 3x3 -> norm
-> ReLU], in stages of 64, 64 | 128, 128 | 256 x 3 | 512 x 3 | 512 x 3, each
stage ended by a 2x2 max-pool, with dropout 0.3 after the first convolution
and 0.4 after the other non-final convolutions of a stage; then flatten ->
dropout 0.5 -> dense 512 -> norm -> ReLU -> dropout 0.5 -> dense num_classes.

Differences from the original code: layers followed by a norm layer have no
bias (the norm cancels it), and pooling uses "same" padding everywhere so any
input size works (Keskar's C1 already did; on 32x32 inputs C2's pools are
exact).
"""

import keras

_VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def shallow(factory, *, num_classes, input_shape, name):
    """C1/C3: two conv-norm-ReLU-maxpool blocks and two dense-norm-ReLU-dropout blocks."""
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    for i in (1, 2):
        x = factory.conv(64, 5, name=f"conv{i}")(x)
        x = factory.norm(f"conv{i}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in ((1, 384), (2, 192)):
        x = factory.dense(units, name=f"dense{i}")(x)
        x = factory.norm(f"dense{i}_norm")(x)
        x = keras.layers.ReLU(name=f"dense{i}_relu")(x)
        x = factory.dropout(0.5, name=f"dense{i}_dropout")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name=name)


def vgg(factory, *, num_classes, input_shape, name):
    """C2/C4: VGG-16 with a norm layer after every convolution, and dropout."""
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    for s, stage in enumerate(_VGG16_STAGES, start=1):
        for c, filters in enumerate(stage, start=1):
            prefix = f"stage{s}_conv{c}"
            x = factory.conv(filters, 3, name=prefix)(x)
            x = factory.norm(f"{prefix}_norm")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if c < len(stage):
                rate = 0.3 if s == 1 else 0.4
                x = factory.dropout(rate, name=f"{prefix}_dropout")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"stage{s}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = factory.dropout(0.5, name="flatten_dropout")(x)
    x = factory.dense(512, name="dense1")(x)
    x = factory.norm("dense1_norm")(x)
    x = keras.layers.ReLU(name="dense1_relu")(x)
    x = factory.dropout(0.5, name="dense1_dropout")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name=name)


def c1(factory, *, num_classes, input_shape):
    """Keskar's C1 (CIFAR-10 shallow conv net); see the module docstring."""
    return shallow(factory, num_classes=num_classes, input_shape=input_shape, name="c1")


def c3(factory, *, num_classes, input_shape):
    """Keskar's C3: C1 for CIFAR-100."""
    return shallow(factory, num_classes=num_classes, input_shape=input_shape, name="c3")


def c2(factory, *, num_classes, input_shape):
    """Keskar's C2 (CIFAR-10 VGG-16 with norm and dropout); see the module docstring."""
    return vgg(factory, num_classes=num_classes, input_shape=input_shape, name="c2")


def c4(factory, *, num_classes, input_shape):
    """Keskar's C4: C2 for CIFAR-100."""
    return vgg(factory, num_classes=num_classes, input_shape=input_shape, name="c4")
