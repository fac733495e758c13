"""Keskar et al.'s 1-D parametric plot between two trained models."""

import dataclasses

import numpy as np

from tfgap.diagnostics import _evaluation


@dataclasses.dataclass(frozen=True)
class InterpolationResult:
    """Loss and accuracy along the line between two models' weights.

    Attributes:
        alphas: the interpolation coefficients, float64 array of shape (k,).
        loss: the loss at each alpha (float64 array).
        accuracy: the accuracy at each alpha (float64 array; NaN when the
            model's output is not a multi-class score vector).
    """

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray


def interpolate(
    model_sb,
    model_lb,
    x,
    y=None,
    *,
    alphas=None,
    batch_size=None,
    loss=None,
):
    """Loss and accuracy along `w(alpha) = alpha * w_LB + (1 - alpha) * w_SB`.

    Keskar et al. (2017, Figure 3) evaluate the training and test loss and
    accuracy on the straight line through a small-batch minimizer (`alpha = 0`)
    and a large-batch minimizer (`alpha = 1`), extended to `alpha` in
    `[-1, 2]`. A sharp large-batch minimum shows as a narrow valley around
    `alpha = 1`; the line also shows whether a barrier separates the two.

    Weights: every trainable weight is interpolated linearly. Non-trainable
    state (BatchNormalization moving mean and variance) is interpolated with
    `alpha` clipped to `[0, 1]`, so that a variance never turns negative
    outside the segment. The evaluation uses `model_sb` as the vessel: its
    weights are set for each alpha and restored bit for bit afterwards (also on
    an exception); `model_lb` is only read. The loss is the mean over all the
    given data in float64 plus `model.losses`, in inference mode (as for
    `sharpness`). The accuracy compares `argmax` of the outputs with the labels
    (integer labels, or one-hot labels of the output's shape); it is NaN for an
    output with a single unit.

    Paper: Keskar et al., "On Large-Batch Training for Deep Learning:
    Generalization Gap and Sharp Minima", ICLR 2017 (arXiv 1609.04836),
    section 2.2 and Figure 3; after Goodfellow, Vinyals & Saxe 2015.

    Args:
        model_sb: the small-batch model (`alpha = 0`); compiled with a loss
            unless `loss` is given.
        model_lb: the large-batch model (`alpha = 1`), same architecture.
        x: inputs, or a batched `tf.data.Dataset` yielding `(x, y)`.
        y: targets for array inputs; None for a dataset.
        alphas: the coefficients (default: 25 evenly spaced in [-1, 2]).
        batch_size: batch size for array inputs (default: up to 1024).
        loss: a loss to use instead of `model_sb`'s compiled one.

    Returns:
        An `InterpolationResult`.

    Example:

    >>> import numpy as np, keras
    >>> x = np.eye(3, dtype="float32")
    >>> y = np.array([0, 1, 2])
    >>> def make(scale):
    ...     m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, use_bias=False)])
    ...     m.set_weights([scale * np.eye(3, dtype="float32")])
    ...     m.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ...     return m
    >>> result = interpolate(make(1.0), make(3.0), x, y, alphas=[0.0, 1.0])
    >>> np.round(result.loss, 4).tolist(), result.accuracy.tolist()
    ([0.5514, 0.0949], [1.0, 1.0])
    """
    loss_fn = _evaluation.resolve_loss(model_sb, loss)
    alphas = np.linspace(-1.0, 2.0, 25) if alphas is None else np.asarray(alphas, np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)):
        raise ValueError(
            "Expected alphas to be a non-empty 1-D sequence of finite numbers; "
            f"received {alphas!r}."
        )
    weights_sb, weights_lb = model_sb.weights, model_lb.weights
    _check_same_architecture(model_sb, model_lb)
    dataset = _evaluation.as_dataset(x, y, batch_size)
    evaluator = _evaluation.LossEvaluator(model_sb, loss_fn, dataset)

    trainable = {id(v) for v in model_sb.trainable_weights}
    start = _evaluation.snapshot(weights_sb)
    end = _evaluation.snapshot(weights_lb)
    losses, accuracies = [], []
    try:
        for alpha in alphas:
            for v, a, b in zip(weights_sb, start, end):
                if not np.issubdtype(a.dtype, np.floating):
                    continue  # integer state (e.g. counters) is left as is
                t = alpha if id(v) in trainable else min(max(alpha, 0.0), 1.0)
                mixed = t * b.astype(np.float64) + (1.0 - t) * a.astype(np.float64)
                v.assign(mixed.astype(a.dtype))
            losses.append(evaluator.value())
            correct = total = 0.0
            for logits, labels in evaluator.predictions():
                c, n = _accuracy_counts(logits, labels)
                correct += c
                total += n
            accuracies.append(correct / total if total else np.nan)
    finally:
        _evaluation.restore(weights_sb, start)
    return InterpolationResult(alphas, np.asarray(losses), np.asarray(accuracies, np.float64))


def _check_same_architecture(model_a, model_b):
    shapes_a = [(tuple(v.shape), v.trainable) for v in model_a.weights]
    shapes_b = [(tuple(v.shape), v.trainable) for v in model_b.weights]
    if shapes_a != shapes_b:
        raise ValueError(
            "Expected two models with the same weights (shapes and trainability, in order); "
            f"received {model_a.name!r} with {shapes_a} and {model_b.name!r} with {shapes_b}."
        )


def _accuracy_counts(logits, y):
    """(correct, total) of argmax predictions; (0, 0) without a class axis."""
    if isinstance(logits, (list, tuple, dict)) or logits.ndim < 1 or logits.shape[-1] == 1:
        return 0.0, 0.0
    predicted = np.argmax(logits, axis=-1)
    if y.ndim == logits.ndim and y.shape[-1] == logits.shape[-1]:
        labels = np.argmax(y, axis=-1)
    else:
        labels = np.reshape(y.astype(np.int64), predicted.shape)
    hits = predicted == labels
    return float(np.sum(hits)), float(hits.size)


def plot_interpolation(results, labels=None, title=None):
    """A matplotlib figure of interpolation results: loss (left) and accuracy (right).

    Draws each `InterpolationResult` (e.g. on the training and the test set),
    loss as solid lines on the left axis (log scale) and accuracy as dashed
    lines on the right axis, as in Keskar et al.'s Figure 3. The figure is
    built with the Agg canvas directly, without pyplot, so it neither changes
    nor depends on the global matplotlib backend; save it with
    `fig.savefig("interpolation.png")`.

    Args:
        results: an `InterpolationResult`, a list of them, or a dict from label
            to result.
        labels: labels of the results in a list (default: "train", "test", ...).
        title: an optional title.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> import numpy as np
    >>> r = InterpolationResult(np.array([0.0, 1.0]), np.array([0.1, 0.3]), np.array([0.9, 0.8]))
    >>> fig = plot_interpolation({"train": r})
    >>> len(fig.axes)
    2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(results, InterpolationResult):
        results = [results]
    if isinstance(results, dict):
        labels, results = list(results.keys()), list(results.values())
    results = list(results)
    if not results or not all(isinstance(r, InterpolationResult) for r in results):
        raise ValueError(
            "Expected an InterpolationResult, a list or a dict of them; received "
            f"{type(results).__name__}."
        )
    if labels is None:
        labels = ["train", "test"][: len(results)] + [
            f"set {i}" for i in range(2, len(results))
        ]
    if len(labels) != len(results):
        raise ValueError(
            f"Expected {len(results)} labels, one per result; received {len(labels)}."
        )
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax_loss = fig.add_subplot(1, 1, 1)
    ax_acc = ax_loss.twinx()
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for i, (label, r) in enumerate(zip(labels, results)):
        color = colors[i % len(colors)]
        ax_loss.plot(r.alphas, r.loss, "-", color=color, label=f"{label} loss")
        if np.any(np.isfinite(r.accuracy)):
            ax_acc.plot(r.alphas, r.accuracy, "--", color=color, label=f"{label} accuracy")
    if all(np.all(r.loss > 0) for r in results):
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("alpha  (0: small batch, 1: large batch)")
    ax_loss.set_ylabel("loss (solid)")
    ax_acc.set_ylabel("accuracy (dashed)")
    ax_loss.axvline(0.0, color="gray", lw=0.5)
    ax_loss.axvline(1.0, color="gray", lw=0.5)
    handles = ax_loss.get_legend_handles_labels()
    more = ax_acc.get_legend_handles_labels()
    ax_loss.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize="small")
    if title:
        ax_loss.set_title(title)
    fig.tight_layout()
    return fig
