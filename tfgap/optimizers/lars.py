"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017)."""

import math
import numbers
import re

import keras
from keras import ops

# The choices of `LARS(trust_denominator=...)`, the default first.
TRUST_DENOMINATORS = ("norm_of_sum", "sum_of_norms")


@keras.saving.register_keras_serializable(package="tfgap")
class LARS(keras.optimizers.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (LARS).

    Very large batches need large learning rates, and one global rate then
    diverges on the layers whose update is large relative to their weights.
    LARS rescales each variable's step by a trust ratio, `||w||` over a
    gradient norm, so every layer moves by about `eta * lr` of its own norm
    per step. For each variable `w` with gradient `g` and velocity `v`
    (initially 0):

    ```
    wd    = weight_decay                          (variables that take weight decay; else 0)
    g'    = g + wd * w
    trust = eta * ||w|| / ||g'||                  trust_denominator="norm_of_sum" (default)
            if ||w|| > 0 and ||g'|| > 0, else 1
    trust = eta * ||w|| / (||g|| + wd * ||w||)    trust_denominator="sum_of_norms"
            if ||w|| > 0 and ||g|| > 0, else 1
                                                  (variables that are adapted; else 1)
    v     = momentum * v + lr * trust * g'
    w     = w - v                                 (nesterov: w - (momentum * v + lr * trust * g'))
    ```

    Norms are Euclidean norms over the whole variable. The weight decay is
    coupled (added to the gradient, as in the paper), not Keras' decoupled
    decay: the base class's `weight_decay` attribute stays `None` and the
    coefficient lives in `coupled_weight_decay`.

    **Trust denominator.** The two choices agree when `wd = 0` (and when `g`
    is a positive multiple of `w`). With `"norm_of_sum"` (default) the trust
    ratio sees the decayed gradient `g'` that the step applies, as in LAMB's
    layer-wise ratio (You et al., 2020) and the MoCo v3 LARS code (Chen, Xie
    & He, 2021). `"sum_of_norms"` is Algorithm 1 of You, Gitman & Ginsburg
    (2017) and the formula of the MLPerf ResNet-50 reference LARS, which also
    adds an epsilon of 1e-7 to the denominator (this class does not).

    **Excluded variables.** With `exclude_1d=True` (default) every variable of
    rank <= 1 (biases, and normalization layers' gamma and beta) takes neither
    weight decay nor adaptation (trust 1): it is updated by plain momentum
    SGD, as in the paper's and common large-batch practice. More variables are
    excluded, before the optimizer is built, with Keras' convention:

    - `exclude_from_weight_decay(var_list=None, var_names=None)`;
    - `exclude_from_adaptation(var_list=None, var_names=None)`,

    where `var_list` holds variables and `var_names` regular-expression
    fragments searched for in each variable's `path` (e.g.
    `"dense_1/kernel"`, which ends in its name). Exclusions are not part of
    `get_config`; call these methods again after loading a config.

    References:
    - [You, Gitman & Ginsburg, 2017](https://arxiv.org/abs/1708.03888),
      "Large Batch Training of Convolutional Networks".
    - [You et al., 2020](https://arxiv.org/abs/1904.00962), "Large Batch
      Optimization for Deep Learning: Training BERT in 76 minutes" (LAMB).
    - [Chen, Xie & He, 2021](https://arxiv.org/abs/2104.02057), "An Empirical
      Study of Training Self-Supervised Vision Transformers" (MoCo v3).

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule`, or a callable
            without arguments returning the rate. Defaults to `0.1`.
        momentum: Float in [0, 1). Defaults to `0.9`.
        eta: Float >= 0, the trust coefficient. Defaults to `0.001`.
        weight_decay: Float >= 0, coupled L2 coefficient. Defaults to `0`.
        nesterov: Whether to use Nesterov momentum. Defaults to `False`.
        exclude_1d: Whether variables of rank <= 1 are excluded from weight
            decay and adaptation. Defaults to `True`.
        trust_denominator: `"norm_of_sum"` (trust `eta * ||w|| / ||g'||`,
            the ratio sees the decayed gradient; LAMB, MoCo v3) or
            `"sum_of_norms"` (trust `eta * ||w|| / (||g|| + wd * ||w||)`,
            You, Gitman & Ginsburg 2017's Algorithm 1 and the MLPerf
            reference). Defaults to `"norm_of_sum"`.
        **kwargs: The other arguments of `keras.optimizers.Optimizer`
            (`clipnorm`, `global_clipnorm`, `use_ema`, `loss_scale_factor`,
            `gradient_accumulation_steps`, `name`...), except its decoupled
            `weight_decay`.

    Example:

    >>> import numpy as np
    >>> optimizer = LARS(learning_rate=0.1, momentum=0.0, eta=0.01)
    >>> w = keras.Variable(np.full((2, 2), 3.0, "float32"))   # ||w|| = 6
    >>> b = keras.Variable(np.ones((2,), "float32"))          # rank 1: not adapted
    >>> g = np.full((2, 2), 0.5, "float32")                   # ||g|| = 1
    >>> optimizer.apply([g, np.ones((2,), "float32")], [w, b])
    >>> np.round(keras.ops.convert_to_numpy(w), 6)   # 3 - 0.1 * (0.01 * 6 / 1) * 0.5
    array([[2.997, 2.997],
           [2.997, 2.997]], dtype=float32)
    >>> np.round(keras.ops.convert_to_numpy(b), 6)   # 1 - 0.1 * 1
    array([0.9, 0.9], dtype=float32)
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        eta=0.001,
        weight_decay=0.0,
        nesterov=False,
        exclude_1d=True,
        trust_denominator="norm_of_sum",
        name=None,
        **kwargs,
    ):
        if isinstance(learning_rate, numbers.Real):
            _check_float("learning_rate", learning_rate, "a finite number >= 0")
        momentum = _check_float("momentum", momentum, "a number in [0, 1)", upper=1.0)
        eta = _check_float("eta", eta, "a finite number >= 0")
        weight_decay = _check_float("weight_decay", weight_decay, "a finite number >= 0")
        if not (isinstance(trust_denominator, str) and trust_denominator in TRUST_DENOMINATORS):
            _invalid("trust_denominator", trust_denominator,
                     "one of " + " or ".join(map(repr, TRUST_DENOMINATORS)))
        # Keras' own `weight_decay` is decoupled (w -= lr * wd * w after the
        # step); LARS couples it into the gradient, so the base gets None.
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        self.momentum = momentum
        self.eta = eta
        self.coupled_weight_decay = weight_decay
        self.nesterov = bool(nesterov)
        self.exclude_1d = bool(exclude_1d)
        self.trust_denominator = trust_denominator
        self._decay_exclusions = _Exclusions()
        self._adaptation_exclusions = _Exclusions()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from the coupled weight decay.

        Must be called before the optimizer is built. Replaces earlier
        exclusions (as Keras' method does); rank <= 1 variables stay excluded
        while `exclude_1d=True`.

        Args:
            var_list: List of variables to exclude.
            var_names: List of strings; a variable whose `path` contains a
                match of any of them (regular-expression search) is excluded,
                e.g. `var_names=["bias"]`.
        """
        self._check_not_built("exclude_from_weight_decay")
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)
        self._decay_exclusions = _Exclusions(
            [self._var_key(v) for v in var_list or []], var_names)

    def exclude_from_adaptation(self, var_list=None, var_names=None):
        """Excludes variables from the trust ratio (their trust is 1).

        Must be called before the optimizer is built. Same arguments and
        rules as `exclude_from_weight_decay`.
        """
        self._check_not_built("exclude_from_adaptation")
        self._adaptation_exclusions = _Exclusions(
            [self._var_key(v) for v in var_list or []], var_names)

    def _check_not_built(self, method):
        # The decisions are made once, in `build`; a later change would be
        # silently ignored.
        if self.built:
            raise ValueError(
                f"`{method}()` can only be configured before the optimizer is built. "
                f"Received a call on the built optimizer {self.name!r}."
            )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        decays, adapts = [], []
        for variable in var_list:
            small = self.exclude_1d and len(variable.shape) <= 1
            key, path = self._var_key(variable), _path(variable)
            decays.append(not small and not self._decay_exclusions.match(key, path))
            adapts.append(not small and not self._adaptation_exclusions.match(key, path))
        # Tuples of Python booleans: decided once, when tracing update_step.
        self._decays = tuple(decays)
        self._adapts = tuple(adapts)
        self.velocities = []
        if self.momentum != 0.0:
            self.velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, dtype)
        raw = g = ops.cast(gradient, dtype)
        decayed = self._decays[index] and self.coupled_weight_decay > 0.0
        if decayed:
            wd = ops.cast(self.coupled_weight_decay, dtype)
            g = ops.add(g, ops.multiply(wd, variable))
        if self._adapts[index]:
            w_norm = _norm(variable)
            if self.trust_denominator == "sum_of_norms":
                # You et al.'s ||g|| + wd * ||w||, defined when the raw ||g|| > 0.
                g_norm = _norm(raw)
                denominator = ops.add(g_norm, ops.multiply(wd, w_norm)) if decayed else g_norm
            else:
                denominator = g_norm = _norm(g)
            positive = ops.logical_and(ops.greater(w_norm, 0.0), ops.greater(g_norm, 0.0))
            safe_denominator = ops.where(positive, denominator, ops.ones_like(denominator))
            trust = ops.where(
                positive,
                ops.cast(self.eta, dtype) * w_norm / safe_denominator,
                ops.ones_like(denominator),
            )
            lr = lr * trust
        step = ops.multiply(lr, g)
        if self.momentum == 0.0:
            self.assign_sub(variable, step)
            return
        v = self.velocities[index]
        momentum = ops.cast(self.momentum, dtype)
        self.assign(v, ops.add(ops.multiply(momentum, v), step))
        if self.nesterov:
            self.assign_sub(variable, ops.add(ops.multiply(momentum, v), step))
        else:
            self.assign_sub(variable, v)

    def get_config(self):
        config = super().get_config()
        config.update({
            "momentum": self.momentum,
            "eta": self.eta,
            "weight_decay": self.coupled_weight_decay,
            "nesterov": self.nesterov,
            "exclude_1d": self.exclude_1d,
            "trust_denominator": self.trust_denominator,
        })
        return config


class _Exclusions:
    """Variables excluded by key, or by a regular expression on their path."""

    def __init__(self, keys=(), names=None):
        self.keys = frozenset(keys)
        names = [str(n) for n in names or []]
        self.pattern = re.compile("|".join(names)) if names else None

    def match(self, key, path):
        if key in self.keys:
            return True
        return self.pattern is not None and self.pattern.search(path) is not None


def _path(variable):
    return getattr(variable, "path", None) or getattr(variable, "name", "")


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


def _invalid(name, value, expected):
    raise ValueError(f"Expected `{name}` to be {expected}, but received {name}={value!r}.")


def _check_float(name, value, expected, upper=None):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
        or (upper is not None and value >= upper)
    ):
        _invalid(name, value, expected)
    return float(value)
