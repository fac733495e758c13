"""Gradients and Hessian-vector products on the TensorFlow backend."""

import tensorflow as tf

_ZERO = tf.UnconnectedGradients.ZERO


def function(fn):
    return tf.function(fn, reduce_retracing=True)


def value_and_gradient(fn):
    def value_and_grad(params, *args):
        params = list(params)
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = fn(params, *args)
        return value, tape.gradient(value, params, unconnected_gradients=_ZERO)

    return tf.function(value_and_grad, reduce_retracing=True)


def hessian_vector_product(fn):
    def hvp(params, vector, *args):
        params = list(params)
        with tf.GradientTape() as outer:
            outer.watch(params)
            with tf.GradientTape() as inner:
                inner.watch(params)
                value = fn(params, *args)
            grads = inner.gradient(value, params, unconnected_gradients=_ZERO)
            dot = tf.add_n(
                [tf.reduce_sum(g * tf.cast(v, g.dtype)) for g, v in zip(grads, vector)]
            )
        return outer.gradient(dot, params, unconnected_gradients=_ZERO)

    return tf.function(hvp, reduce_retracing=True)
