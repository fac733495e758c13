"""Gradients and Hessian-vector products on the PyTorch backend (eager)."""

import torch


def function(fn):
    def evaluate(*args):
        with torch.no_grad():
            return fn(*args)

    return evaluate


def _leaves(params):
    return [p.detach().requires_grad_(True) for p in params]


def _grads(value, params, **kwargs):
    grads = torch.autograd.grad(value, params, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def value_and_gradient(fn):
    def value_and_grad(params, *args):
        params = _leaves(params)
        value = fn(params, *args)
        return value.detach(), [g.detach() for g in _grads(value, params)]

    return value_and_grad


def hessian_vector_product(fn):
    def hvp(params, vector, *args):
        params = _leaves(params)
        value = fn(params, *args)
        grads = _grads(value, params, create_graph=True)
        dot = sum(
            torch.sum(g * v.to(g.dtype)) for g, v in zip(grads, vector) if g.requires_grad
        )
        if not torch.is_tensor(dot) or not dot.requires_grad:
            return [torch.zeros_like(p) for p in params]  # fn is linear in params
        return [g.detach() for g in _grads(dot, params)]

    return hvp
