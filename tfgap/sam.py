"""Sharpness-Aware Minimization (Foret et al., 2021) for `model.fit`.

`sam_perturbation` is the pure computation of the ascent step; `SAM` is a
`keras.Model` wrapper whose `train_step` makes the two passes.
"""

import math
import numbers

import keras
from keras import ops

from tfgap import backend
from tfgap._wrapped_model import from_wrapper_config, wrapper_config

backend.require_tensorflow("tfgap.sam")  # before TensorFlow: one clear ImportError

import tensorflow as tf  # noqa: E402


def sam_perturbation(gradients, weights, rho, adaptive=False):
    """The SAM ascent step `e` for each weight, from the global gradient.

    With `g` the gradient of all the weights together (one vector over every
    variable), the worst-case perturbation of norm `rho` to first order is

    ```
    e   = rho * g / ||g||                              (SAM, Foret et al. 2021)
    e_i = rho * w_i**2 * g_i / sqrt(sum_j (w_j g_j)**2)  (adaptive: ASAM, Kwon et al. 2021)
    ```

    where the sums and norms run over every element of every variable. When
    that norm is zero or not finite (all gradients zero, or an overflow under
    loss scaling), every `e` is zero: the step is then a plain step.

    For the example below, adaptive: `0.5 * w**2 * g / ||(1*3, 1*0, 2*4)||`.

    Pure: reads `weights`, assigns nothing, and computes in the weights'
    dtype. Under a `tf.distribute` strategy, pass the all-reduced gradients
    (the norm must be the global gradient's), as `SAM.train_step` does.

    References:
    - [Foret et al., 2021](https://arxiv.org/abs/2010.01412),
      "Sharpness-Aware Minimization for Efficiently Improving Generalization".
    - [Kwon et al., 2021](https://arxiv.org/abs/2102.11600), "ASAM:
      Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of
      Deep Neural Networks".

    Args:
        gradients: List of gradient tensors, one per weight; `None` counts as
            zero.
        weights: List of variables or tensors, the point the gradients were
            taken at.
        rho: Finite float >= 0, the radius of the neighbourhood.
        adaptive: Whether to use the adaptive (ASAM) perturbation.

    Returns:
        A list of tensors `e`, one per weight, of the weights' shapes and
        dtypes.

    Example:

    >>> import numpy as np
    >>> grads = [np.array([3.0, 0.0], "float32"), np.array([4.0], "float32")]
    >>> weights = [np.array([1.0, 1.0], "float32"), np.array([2.0], "float32")]
    >>> def show(tensors):
    ...     return [np.round(keras.ops.convert_to_numpy(t).astype(float), 5).tolist()
    ...             for t in tensors]
    >>> show(sam_perturbation(grads, weights, rho=0.5))   # 0.5 * g / ||(3, 0, 4)||
    [[0.3, 0.0], [0.4]]
    >>> show(sam_perturbation(grads, weights, rho=0.5, adaptive=True))
    [[0.17556, 0.0], [0.93633]]
    """
    rho = check_rho(rho)
    gradients, weights = list(gradients), list(weights)
    if len(gradients) != len(weights):
        raise ValueError(
            "Expected one gradient per weight, but received "
            f"len(gradients)={len(gradients)} and len(weights)={len(weights)}."
        )
    if not weights:
        return []
    values, grads = [], []
    for g, w in zip(gradients, weights):
        w = ops.convert_to_tensor(w)
        dtype = w.dtype
        values.append(w)
        grads.append(ops.zeros_like(w) if g is None else ops.cast(ops.convert_to_tensor(g), dtype))
    terms = [w * g for w, g in zip(values, grads)] if adaptive else grads
    dtype = values[0].dtype
    squares = ops.stack([ops.cast(ops.sum(ops.square(t)), dtype) for t in terms])
    norm = ops.sqrt(ops.sum(squares))
    usable = ops.logical_and(ops.greater(norm, 0.0), ops.isfinite(norm))
    scale = ops.where(usable, rho / ops.where(usable, norm, ops.ones_like(norm)),
                      ops.zeros_like(norm))
    perturbations = []
    for w, g in zip(values, grads):
        direction = w * w * g if adaptive else g
        e = ops.cast(scale, w.dtype) * direction
        # 0 * NaN is NaN: a non-finite gradient must give e = 0, not NaN.
        perturbations.append(ops.where(usable, e, ops.zeros_like(e)))
    return perturbations


def sharpness_aware_gradients(loss_fn, variables, gradients, rho, adaptive=False):
    """`g* = grad L(w + e)`: SAM's second pass, which changes no state of the model.

    The one implementation of the pass at the perturbed weights, used by
    `SAM.train_step` and by the `tfgap.training` trainer. It runs in a
    replica context (or none): `gradients` (the gradient at `w`, this
    replica's share) are all-reduced (summed) over the replicas first, so the
    perturbation comes from the global gradient and is the same on every
    replica. `loss_fn()` is then evaluated in a `keras.StatelessScope` that
    maps each variable to `w + e`: the model runs in training mode on the
    same batch (the same ghost batches), and every assignment it makes
    (moving statistics, metric and seed state) is discarded with the scope.
    Regularization losses a layer adds during the call are collected at
    `w + e`.

    Args:
        loss_fn: a no-argument callable computing the (scaled) loss of the
            current batch by calling the model; it must read the weights
            through the model's variables.
        variables: the trainable variables `w`.
        gradients: the gradient of the loss at `w`, one per variable (`None`
            counts as zero).
        rho: the neighbourhood radius (see `check_rho`).
        adaptive: ASAM's scale-invariant perturbation.

    Returns:
        The gradients at `w + e`, one per variable (this replica's share, to
        be all-reduced by the optimizer like any gradient).
    """
    gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(gradients, variables)]
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        gradients = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    weights = [tf.convert_to_tensor(v) for v in variables]
    perturbations = sam_perturbation(gradients, weights, rho, adaptive)
    perturbed = [w + e for w, e in zip(weights, perturbations)]
    with tf.GradientTape() as tape:
        tape.watch(perturbed)
        with keras.StatelessScope(state_mapping=list(zip(variables, perturbed)),
                                  collect_losses=True):
            loss = loss_fn()
    return tape.gradient(loss, perturbed)


def check_rho(rho):
    """Returns `rho` as a float, or raises a `ValueError` unless finite and >= 0."""
    if (
        isinstance(rho, bool)
        or not isinstance(rho, numbers.Real)
        or not math.isfinite(rho)
        or rho < 0
    ):
        raise ValueError(f"Expected `rho` to be a finite number >= 0, but received rho={rho!r}.")
    return float(rho)


@keras.saving.register_keras_serializable(package="tfgap")
class SAM(keras.Model):
    """Trains a model with Sharpness-Aware Minimization in `model.fit`.

    SAM looks for weights whose whole neighbourhood has a low loss: flat
    minima, which generalize better, the aim also of the large-batch remedies
    in tfgap. Each training step, on one batch, makes two passes:

    ```
    g  = grad L(w)                 forward/backward at w (training mode)
    e  = sam_perturbation(g, w, rho, adaptive)   global norm over all weights
    g* = grad L(w + e)             forward/backward at w + e, same batch
    w  <- optimizer step with g*   applied at the unperturbed w
    ```

    `L` is the compiled loss plus the model's losses (regularization at `w`
    and at `w + e` respectively). A step costs about two plain steps.

    **Normalization layers.** Their moving statistics (and every other
    non-trainable state) are updated once per step, by the pass at `w`. The
    pass at `w + e` runs in training mode on the same batch, so batch and
    `tfgap.layers.GhostBatchNormalization` layers normalize it with the same
    (ghost) batches, but it runs in a `keras.StatelessScope`: its updates of
    moving statistics, metrics and seeds are discarded. Metrics and the
    reported loss are those of the pass at `w`.

    **Distribution.** Under a `tf.distribute` strategy the first gradient is
    all-reduced (summed, as the optimizer does) before `e` is computed, so
    `e` comes from the global gradient, the same on every replica; a
    `MirroredStrategy` fit equals a single-device fit on the same global
    batch (for a model without batch statistics).

    **Saving.** The wrapper and its inner model share their variables.
    `sam.save("sam.keras")` saves the wrapper with its config, the inner
    model, and the compiled optimizer (`keras.models.load_model` restores a
    `SAM`). To serve or fine-tune without SAM, save or export the inner model:
    `sam.inner_model.save("model.keras")`, `sam.inner_model.export(path)`.

    Only the TensorFlow backend is supported (the step uses
    `tf.GradientTape` and `tf.distribute`).

    References:
    - [Foret et al., 2021](https://arxiv.org/abs/2010.01412),
      "Sharpness-Aware Minimization for Efficiently Improving Generalization".
    - [Kwon et al., 2021](https://arxiv.org/abs/2102.11600), "ASAM".

    Args:
        model: The `keras.Model` (or layer) to train; its call is the
            wrapper's call. Available as `inner_model`.
        rho: Finite float >= 0, the neighbourhood radius. Defaults to `0.05`
            (ASAM papers use larger values, e.g. 0.5 to 2). `rho=0` is plain
            training at twice the cost.
        adaptive: Whether to use ASAM's scale-invariant perturbation.
            Defaults to `False`.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    >>> import numpy as np
    >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> sam = SAM(inner, rho=0.05)
    >>> sam.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    >>> history = sam.fit(x, x.sum(axis=1, keepdims=True), batch_size=8, epochs=2,
    ...                   verbose=0)
    >>> sam.predict(x[:2], verbose=0).shape
    (2, 1)
    >>> sam.inner_model is inner
    True
    """

    def __init__(self, model, rho=0.05, adaptive=False, **kwargs):
        if not isinstance(model, keras.layers.Layer):
            raise ValueError(
                "Expected `model` to be a keras.Model (or layer), but received "
                f"model={model!r} of type {type(model).__name__}."
            )
        rho = check_rho(rho)
        if not isinstance(adaptive, bool):
            raise ValueError(
                f"Expected `adaptive` to be True or False, but received adaptive={adaptive!r}."
            )
        super().__init__(**kwargs)
        self.inner_model = model
        self.rho = rho
        self.adaptive = adaptive
        if model.built:
            self.built = True

    def call(self, inputs, training=None):
        return self.inner_model(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = list(self.trainable_variables)
        y_pred = None

        def scaled_loss_at_the_weights():
            nonlocal y_pred
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            return loss, self.optimizer.scale_loss(loss)

        def scaled_loss_perturbed():
            y_pred_perturbed = self(x, training=True)
            return self.optimizer.scale_loss(self.compute_loss(
                x=x, y=y, y_pred=y_pred_perturbed, sample_weight=sample_weight, training=True))

        # Pass 1 at w (moving statistics, metrics); pass 2 at w + e, stateless.
        with tf.GradientTape() as tape:
            loss, scaled_loss = scaled_loss_at_the_weights()
        gradients = tape.gradient(scaled_loss, variables)
        sharpness_gradients = sharpness_aware_gradients(
            scaled_loss_perturbed, variables, gradients, self.rho, self.adaptive)
        self.optimizer.apply(sharpness_gradients, variables)

        for metric in self.metrics:
            if metric.name == "loss":
                # compute_loss divides by the number of replicas; report the
                # per-example loss, as Keras' own train_step does.
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                metric.update_state(loss * ops.cast(replicas, loss.dtype),
                                    sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return wrapper_config(super().get_config(), self.inner_model, rho=self.rho,
                              adaptive=self.adaptive)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return from_wrapper_config(cls, config, custom_objects)
