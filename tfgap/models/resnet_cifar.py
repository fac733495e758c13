"""ResNet-44 for CIFAR (He et al. 2016, section 4.2).

    conv 3x3, 16 -> norm -> ReLU
    3 stages x 7 basic blocks, 16 / 32 / 64 filters (stride 2 entering stages 2 and 3)
    global average pool -> dense num_classes

A basic block (post-activation, as in the paper):

    y = relu(norm(conv3x3(relu(norm(conv3x3(x))))) + shortcut(x))

Depth = 6n + 2 with n = 7. Shortcuts where the shape changes:

- `shortcut="zero_pad"` (default): He et al.'s option A, the one behind the
  published 0.66M parameters: subsample by 2 and zero-pad the new channels,
  parameter-free (`ZeroPadShortcut`);
- `shortcut="projection"`: option B, a strided 1x1 convolution and a norm
  layer, as in Hoffer et al.'s reference code (`models/resnet.py`), which
  adds 2,560 kernel and 192 norm weights.

`zero_init_residual=True` starts the last norm layer of every block with
gamma = 0, so every block is the identity at initialization (Goyal et al.
2017's large-batch trick); the default is the papers' gamma = 1.
"""

import keras
from keras import ops

from tfgap import _validation as checks

_SHORTCUTS = ("zero_pad", "projection")


@keras.saving.register_keras_serializable(package="tfgap")
class ZeroPadShortcut(keras.layers.Layer):
    """Parameter-free ResNet shortcut: subsample, then zero-pad the channels.

    He et al. 2016's option A for CIFAR: where a stage doubles the filters and
    halves the resolution, the identity shortcut keeps every `strides`-th pixel
    and adds zero channels, split evenly before and after the input channels:

        y[:, i, j, :] = concat(0_a, x[:, strides * i, strides * j, :], 0_b)
        a = (filters - c) // 2,  b = filters - c - a

    Paper: He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image
    Recognition", section 4.2.

    Args:
        filters: int, number of output channels (>= the input channels).
        strides: int >= 1, spatial subsampling factor.
        **kwargs: base layer keyword arguments (`name`, `dtype`).

    Call arguments:
        inputs: a `(batch, height, width, channels)` tensor.

    Example:

    >>> import numpy as np
    >>> x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    >>> y = ZeroPadShortcut(filters=3, strides=2)(x)
    >>> tuple(y.shape)
    (2, 2, 2, 3)
    >>> np.asarray(y)[0, :, :, 1].tolist()
    [[0.0, 2.0], [8.0, 10.0]]
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        checks.integer("filters", filters, minimum=1)
        checks.integer("strides", strides, minimum=1)
        self.filters = int(filters)
        self.strides = int(strides)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels > self.filters:
            raise ValueError(
                f"Expected at most `filters`={self.filters} input channels. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :]
        extra = self.filters - inputs.shape[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        s = self.strides

        def sub(n):
            return None if n is None else (n + s - 1) // s

        return (input_shape[0], sub(input_shape[1]), sub(input_shape[2]), self.filters)

    def get_config(self):
        config = {"filters": self.filters, "strides": self.strides}
        return {**super().get_config(), **config}


def conv3x3(factory, filters, *, strides, name):
    """3x3 convolution padded by 1 on every side, as in PyTorch.

    Keras' "same" pads a stride-2 convolution of an even input only at the
    bottom/right; the explicit padding keeps the reference code's alignment.
    """
    if strides == 1:
        return factory.conv(filters, 3, name=name)

    conv = factory.conv(filters, 3, strides=strides, padding="valid", name=name)
    pad = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")
    return lambda x: conv(pad(x))


def basic_block(factory, x, filters, *, strides, shortcut, zero_init_residual, name):
    """He et al.'s post-activation basic block (see the module docstring)."""
    y = conv3x3(factory, filters, strides=strides, name=f"{name}_conv1")(x)
    y = factory.norm(f"{name}_norm1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = conv3x3(factory, filters, strides=1, name=f"{name}_conv2")(y)
    y = factory.norm(f"{name}_norm2", zero_gamma=zero_init_residual)(y)
    if strides != 1 or x.shape[-1] != filters:
        if shortcut == "zero_pad":
            x = ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
        else:
            x = factory.conv(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
            x = factory.norm(f"{name}_shortcut_norm")(x)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet44(
    factory, *, num_classes, input_shape, shortcut="zero_pad", zero_init_residual=False
):
    """ResNet-44 for CIFAR; see the module docstring.

    Args:
        shortcut: "zero_pad" (He et al.'s option A, default) or "projection"
            (option B, Hoffer et al.'s reference code).
        zero_init_residual: bool, gamma = 0 in the last norm layer of each block.

    0.66M parameters (658,586 trainable with 10 classes and "zero_pad").
    """
    if shortcut not in _SHORTCUTS:
        raise ValueError(
            f"Expected `shortcut` in {list(_SHORTCUTS)}. Received: shortcut={shortcut!r}"
        )
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = factory.conv(16, 3, name="stem_conv")(inputs)
    x = factory.norm("stem_norm")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, 8):
            x = basic_block(
                factory,
                x,
                filters,
                strides=2 if (stage > 1 and block == 1) else 1,
                shortcut=shortcut,
                zero_init_residual=bool(zero_init_residual),
                name=f"stage{stage}_block{block}",
            )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name="resnet44")
