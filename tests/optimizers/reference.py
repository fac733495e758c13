"""LARS in float64 NumPy, written from the formulas of You, Gitman & Ginsburg (2017).

Independent of tfgap: used as the reference of the optimizer tests.
"""

import numpy as np


def lars_reference(weights, gradient_steps, learning_rates, momentum, eta, weight_decay,
                   nesterov, decays, adapts):
    """Runs LARS over `gradient_steps` (a list of lists of gradients).

    `learning_rates[t]` is the rate of step t; `decays[i]` / `adapts[i]` say
    whether variable i takes weight decay / the trust ratio. Returns the
    final weights (float64).
    """
    w = [np.array(x, np.float64) for x in weights]
    v = [np.zeros_like(x) for x in w]
    for lr, grads in zip(learning_rates, gradient_steps):
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            if decays[i]:
                g = g + weight_decay * w[i]
            trust = 1.0
            if adapts[i]:
                w_norm, g_norm = np.linalg.norm(w[i]), np.linalg.norm(g)
                if w_norm > 0 and g_norm > 0:
                    trust = eta * w_norm / g_norm
            step = lr * trust * g
            v[i] = momentum * v[i] + step
            if nesterov:
                w[i] = w[i] - (momentum * v[i] + step)
            else:
                w[i] = w[i] - v[i]
    return w
