"""The study's figures (PNG), drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects on a
`FigureCanvasAgg`, never through `pyplot`: nothing changes (or depends on) the
global matplotlib backend, and importing this module imports no matplotlib.

- `test_error.png`: test error against epochs and against weight updates, one
  curve per regime, mean over seeds with a ±1 std band (Hoffer et al. 2017,
  Figure 2). Both x axes are logarithmic: `+RA` trains `B_L / B_S` times
  more epochs than `LB`, and `SB` makes `B_L / B_S` times more updates.
- `weight_distance.png`: `||w_t - w_0||` against `log t` (t = updates), one
  curve per regime, mean over seeds (Hoffer et al. 2017, Figure 1): straight
  lines are the "ultra-slow diffusion" law, their slope the diffusion slope.
- `interpolation.png`: Keskar et al.'s 1-D plot, loss and accuracy on
  `w(alpha) = alpha * w_LB + (1 - alpha) * w_SB` on training and test data.
"""

import os

import numpy as np

STYLES = {"SB": "-", "LB": "-", "LB+LR": "--", "LB+LR+GBN": "-.", "LB+LR+GBN+RA": "-"}
COLORS = {
    "SB": "tab:blue",
    "LB": "tab:red",
    "LB+LR": "tab:orange",
    "LB+LR+GBN": "tab:purple",
    "LB+LR+GBN+RA": "tab:green",
}


def _figure(width, height, ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _curves(records, x_key):
    """Mean and std over seeds of test error at the evaluated epochs."""
    per_seed = []
    for r in records:
        points = {}
        for h in r["history"]:
            if h.get("test_accuracy") is not None:
                points[float(h[x_key])] = 1.0 - float(h["test_accuracy"])
        per_seed.append(points)
    xs = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    values = np.array([[p[x] for x in xs] for p in per_seed], dtype=np.float64)
    if values.size == 0:
        return np.array([]), np.array([]), np.array([])
    return np.array(xs), values.mean(axis=0), values.std(axis=0)


def _log_x(ax):
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_test_error(runs):
    """Figure 2: test error vs epochs (left) and vs weight updates (right)."""
    fig, (ax_epochs, ax_steps) = _figure(11, 4.2, ncols=2)
    for name, records in runs.items():
        color = COLORS.get(name)
        for ax, key in ((ax_epochs, "epochs_completed"), (ax_steps, "step")):
            x, mean, std = _curves(records, key)
            if not x.size:
                continue
            ax.plot(x, 100 * mean, STYLES.get(name, "-"), color=color, label=name, lw=1.5)
            ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), color=color, alpha=0.15,
                            lw=0)
    for ax, label in ((ax_epochs, "epochs"), (ax_steps, "weight updates")):
        _log_x(ax)
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_ylabel("test error (%)")
        ax.grid(True, which="both", alpha=0.3)
    ax_epochs.legend(loc="best", fontsize="small")
    ax_epochs.set_title("test error vs epochs")
    ax_steps.set_title("test error vs weight updates")
    fig.tight_layout()
    return fig


def plot_weight_distance(runs):
    """Figure 1: `||w_t - w_0||` against `log t`, one curve per regime."""
    fig, (ax,) = _figure(6.5, 4.2)
    for name, records in runs.items():
        per_seed = [{int(s): float(d) for s, d in r["distance_record"] if s >= 1}
                    for r in records]
        if not per_seed:
            continue
        steps = sorted(set.intersection(*(set(p) for p in per_seed)))
        if not steps:
            continue
        mean = np.array([np.mean([p[s] for p in per_seed]) for s in steps])
        ax.plot(steps, mean, STYLES.get(name, "-"), color=COLORS.get(name), label=name, lw=1.5)
    _log_x(ax)
    ax.set_xlabel("weight updates t (log scale)")
    ax.set_ylabel("||w_t - w_0||")
    ax.set_title("distance from initialization (mean over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_interpolation(interpolation):
    """Keskar's 1-D plot between the SB (alpha 0) and LB (alpha 1) solutions."""
    from tfgap.diagnostics import InterpolationResult
    from tfgap.diagnostics import plot_interpolation as draw

    alphas = np.asarray(interpolation["alphas"], np.float64)
    results = {
        split: InterpolationResult(alphas, np.asarray(interpolation[f"{split}_loss"]),
                                   np.asarray(interpolation[f"{split}_accuracy"]))
        for split in ("train", "test")
    }
    return draw(results, title="SB (alpha=0) <-> LB (alpha=1), seed of the first run")


def write_figures(runs, interpolation, output_dir):
    """Writes the PNG figures into `output_dir`; returns their file names."""
    os.makedirs(output_dir, exist_ok=True)
    figures = {"test_error.png": plot_test_error(runs),
               "weight_distance.png": plot_weight_distance(runs)}
    if interpolation:
        figures["interpolation.png"] = plot_interpolation(interpolation)
    for filename, fig in figures.items():
        fig.savefig(os.path.join(output_dir, filename), dpi=110)
    return sorted(figures)
