"""Gradients and Hessian-vector products on the JAX backend."""

import jax


def function(fn):
    return jax.jit(fn)


def value_and_gradient(fn):
    return jax.jit(jax.value_and_grad(fn))


def hessian_vector_product(fn):
    grad = jax.grad(fn)

    def hvp(params, vector, *args):
        # Forward over reverse: one jvp of the gradient.
        vector = [v.astype(p.dtype) for p, v in zip(params, vector)]
        return jax.jvp(lambda p: grad(p, *args), (list(params),), (vector,))[1]

    return jax.jit(hvp)
