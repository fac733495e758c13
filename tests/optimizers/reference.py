"""LARS in float64 NumPy, written from the formulas of You, Gitman & Ginsburg (2017).

Independent of tfgap: used as the reference of the optimizer tests.
"""

import numpy as np


def lars_reference(weights, gradient_steps, learning_rates, momentum, eta, weight_decay,
                   nesterov, decays, adapts, trust_denominator="norm_of_sum"):
    """Runs LARS over `gradient_steps` (a list of lists of gradients).

    `learning_rates[t]` is the rate of step t; `decays[i]` / `adapts[i]` say
    whether variable i takes weight decay / the trust ratio.
    `trust_denominator` is `"norm_of_sum"` (||g + wd w||) or `"sum_of_norms"`
    (||g|| + wd ||w||, You et al.'s Algorithm 1). Returns the final weights
    (float64).
    """
    w = [np.array(x, np.float64) for x in weights]
    v = [np.zeros_like(x) for x in w]
    for lr, grads in zip(learning_rates, gradient_steps):
        for i, raw in enumerate(grads):
            raw = np.array(raw, np.float64)
            wd = weight_decay if decays[i] else 0.0
            g = raw + wd * w[i]
            trust = 1.0
            if adapts[i]:
                w_norm = np.linalg.norm(w[i])
                if trust_denominator == "sum_of_norms":
                    condition = np.linalg.norm(raw)
                    denominator = condition + wd * w_norm
                elif trust_denominator == "norm_of_sum":
                    condition = denominator = np.linalg.norm(g)
                else:
                    raise ValueError(trust_denominator)
                if w_norm > 0 and condition > 0:
                    trust = eta * w_norm / denominator
            step = lr * trust * g
            v[i] = momentum * v[i] + step
            if nesterov:
                w[i] = w[i] - (momentum * v[i] + step)
            else:
                w[i] = w[i] - v[i]
    return w
