"""A small 1-D convolutional network: the MNIST-1D study's default model.

    x -> [Conv1D k, c_1 -> norm -> ReLU -> max-pool 2] -> ... (cnn_depth blocks)
      -> flatten -> Dense num_classes

Block 1 has `cnn_filters` channels and every later block `2 * cnn_filters`
(the defaults give 32, 64, 64, as in the MNIST-1D measurements of tfgap's
issue 11). Every convolution has kernel `cnn_kernel`, "same" padding and no
bias (the norm layer that follows cancels any bias); each max-pool halves the
length ("same" padding, so odd lengths round up). A `(length,)` input is read
as one channel, `(length, channels)` as is.

Hoffer et al.'s and Keskar et al.'s networks (Table 1 of both papers) are all
convolutional with batch normalization after every convolution; this is the
smallest network of that kind that fits MNIST-1D's 40-sample signals and
trains the study's regimes on a laptop CPU in minutes.
"""

import keras


def _check_int(key, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected `{key}` to be an integer >= {minimum}. "
                         f"Received: {key}={value!r}")


def _conv1d(factory, filters, kernel_size, *, name):
    """A bias-free `Conv1D` with the factory's conventions (He fan-out normal, L2, seed)."""
    return keras.layers.Conv1D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(
            2.0, mode="fan_out", distribution="untruncated_normal", seed=factory._next_seed()
        ),
        kernel_regularizer=factory._regularizer(),
        name=name,
    )


def cnn1d(factory, *, num_classes, input_shape, cnn_filters=32, cnn_depth=3, cnn_kernel=5):
    """The 1-D CNN: `cnn_depth` x [Conv1D, norm, ReLU, max-pool 2], flatten, Dense.

    Args:
        cnn_filters: int >= 1, channels of the first block (later blocks have
            twice as many).
        cnn_depth: int >= 1, number of conv blocks.
        cnn_kernel: int >= 1, kernel size of every convolution.

    With 40 inputs, 10 classes and the defaults it has 5*32 + 5*32*64 +
    5*64*64 conv weights, 2 x (32 + 64 + 64) norm weights and a Dense layer of
    (5*64)*10 + 10 (34,410 trainable).
    """
    for key, value in (("cnn_filters", cnn_filters), ("cnn_depth", cnn_depth),
                       ("cnn_kernel", cnn_kernel)):
        _check_int(key, value)
    if len(input_shape) not in (1, 2):
        raise ValueError(
            "Expected `input_shape` of model 'cnn1d' to be (length,) or (length, channels). "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    if len(input_shape) == 1:
        x = keras.layers.Reshape((input_shape[0], 1), name="channels")(x)
    for i in range(1, cnn_depth + 1):
        filters = cnn_filters if i == 1 else 2 * cnn_filters
        x = _conv1d(factory, filters, cnn_kernel, name=f"conv{i}")(x)
        x = factory.norm(f"conv{i}_norm")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        x = keras.layers.MaxPooling1D(2, padding="same", name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = factory.logits(num_classes)(x)
    return keras.Model(inputs, outputs, name="cnn1d")
