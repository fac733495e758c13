"""The study's figures (PNG), drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects on a
`FigureCanvasAgg`, never through `pyplot`: nothing changes (or depends on) the
global matplotlib backend, and importing this module imports no matplotlib.
Every panel has a legend, every curve its own color, line style and marker
(so curves that overlap stay visible), markers at the points actually
measured, and every title says the data set, the model and the seeds.

- `test_error.png`: test error of Table 1's rows and `LB+RA` against epochs
  and against weight updates, mean over seeds with a ±1 std band (Hoffer et
  al. 2017, Figure 2). Both x axes are logarithmic: `+RA` trains `B_L / B_S`
  times more epochs than `LB`, and `SB` makes `B_L / B_S` times more updates.
- `weight_distance.png`: `||w_t - w_0||` against `log t` (t = updates), mean
  over seeds, with each row's fitted `a log t + b` over the last decade of
  its high-learning-rate phase drawn as a thick line (Hoffer et al. 2017,
  Figure 1).
- `interpolation.png`: Keskar et al.'s 1-D plot between the `SB (converged)`
  and `LB (converged)` solutions, one thin line per seed and their mean.
- `ghost_size.png`: validation and test accuracy at `+LR` against the ghost
  batch size, plain BN (one ghost = the whole batch) at the right.
- `ablations.png`: validation and test accuracy of every row, grouped, with
  `SB`'s test accuracy as a reference line.
"""

import os

import numpy as np

from tfgap.study.regimes import GHOST, REGIMES
from tfgap.study.report import epoch_value

STYLES = {"SB": ("-", "o"), "LB": ("-", "s"), "LB+LR": ("--", "^"),
          "LB+LR+GBN": ("-.", "D"), "LB+LR+GBN+RA": (":", "v"), "LB+RA": ("--", "P")}
COLORS = {
    "SB": "tab:blue",
    "LB": "tab:red",
    "LB+LR": "tab:orange",
    "LB+LR+GBN": "tab:purple",
    "LB+LR+GBN+RA": "tab:green",
    "LB+RA": "tab:brown",
}
# The rows drawn as curves (test error, weight distance).
CURVE_ROWS = (*REGIMES, "LB+RA")
DATASET_NAMES = {"mnist1d": "MNIST-1D", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "mnist": "MNIST", "imagenet2012": "ImageNet"}


def study_title(base, seeds, long_seeds, ablation_seeds=None):
    """The figures' title: data set, model, batch sizes, seeds.

    Example:

    >>> from tfgap.study import small_batch_config
    >>> sb = small_batch_config(dataset="mnist1d", model="cnn1d", model_dir="/tmp/t",
    ...                         small_batch_size=32, lr=0.05, epochs=12)
    >>> study_title(sb, [0, 1, 2, 3, 4], [0, 1], [0, 1, 2])
    'MNIST-1D, cnn1d, SB 32; seeds 0-4 (ablations 0-2, +RA rows 0-1)'
    """
    def span(values):
        values = list(values)
        return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"

    dataset = DATASET_NAMES.get(base.dataset, base.dataset)
    seeds, long_seeds = list(seeds), list(long_seeds)
    ablation_seeds = seeds if ablation_seeds is None else list(ablation_seeds)
    text = (f"{dataset}, {base.model}, SB {base.base_batch_size}; "
            f"seed{'s' if len(seeds) > 1 else ''} {span(seeds)}")
    tiers = [f"{what} {span(tier)}" for what, tier in (("ablations", ablation_seeds),
                                                        ("+RA rows", long_seeds))
             if tier != seeds]
    return text + (f" ({', '.join(tiers)})" if tiers else "")


def _figure(width, height, ncols=1, nrows=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(ncols * nrows)]
    return fig, axes


def _curves(records, x_key, split="test"):
    """Mean and std over seeds of `split`'s error at the x values every seed evaluated."""
    per_seed = []
    for r in records:
        points = {}
        for h in r["history"]:
            accuracy = epoch_value(h, split, "accuracy")
            if accuracy is not None:
                points[float(h[x_key])] = 1.0 - float(accuracy)
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


def _style(name, i):
    line, marker = STYLES.get(name, (("-", "--", "-.", ":")[i % 4], "osD^v<>"[i % 7]))
    return line, marker, COLORS.get(name, f"C{i % 10}")


def plot_test_error(runs, title=""):
    """Figure 2: test error vs epochs (left) and vs weight updates (right), Table 1's rows."""
    fig, (ax_epochs, ax_steps) = _figure(12, 4.8, ncols=2)
    names = [n for n in CURVE_ROWS if n in runs] or list(runs)
    stretch = None
    for i, name in enumerate(names):
        records = runs[name]
        line, marker, color = _style(name, i)
        for ax, key in ((ax_epochs, "epochs_completed"), (ax_steps, "step")):
            x, mean, std = _curves(records, key)
            if not x.size:
                continue
            ax.plot(x, 100 * mean, line, marker=marker, ms=4, color=color, lw=1.5,
                    label=f"{name} (n={len(records)})")
            ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), color=color, alpha=0.12,
                            lw=0)
        if name.endswith("+RA") and records:
            stretch = records[0]["config"]["batch_size"] / records[0]["config"]["base_batch_size"]
    for ax, label in ((ax_epochs, "epochs"), (ax_steps, "weight updates")):
        _log_x(ax)
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_ylabel("test error (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    ax_epochs.set_title("test error vs epochs")
    ax_steps.set_title("test error vs weight updates")
    fig.suptitle(f"{title}: test error, mean ± std over seeds")
    note = "Markers: evaluations, every epoch of SB's regime"
    if stretch:
        note += (f"; +RA is evaluated every {stretch:g} epochs (as often in updates as SB), "
                 f"so its first marker is at epoch {stretch:g}")
    fig.text(0.5, 0.01, note + ".", ha="center", fontsize="small")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


def plot_weight_distance(runs, title=""):
    """Figure 1: `||w_t - w_0||` against `log t`, with the fitted `a log t + b` lines."""
    fig, (ax,) = _figure(7.5, 5)
    names = [n for n in CURVE_ROWS if n in runs] or list(runs)
    for i, name in enumerate(names):
        records = runs[name]
        per_seed = [{int(s): float(d) for s, d in r["distance_record"] if s >= 1}
                    for r in records]
        if not per_seed:
            continue
        steps = sorted(set.intersection(*(set(p) for p in per_seed)))
        if not steps:
            continue
        line, marker, color = _style(name, i)
        mean = np.array([np.mean([p[s] for p in per_seed]) for s in steps])
        fits = [r.get("diffusion") for r in records if r.get("diffusion")]
        label = name
        if fits:
            a = float(np.mean([f["slope"] for f in fits]))
            b = float(np.mean([f["intercept"] for f in fits]))
            lo = float(np.mean([f["window"][0] for f in fits]))
            hi = float(np.mean([f["window"][1] for f in fits]))
            t = np.geomspace(lo, hi, 20)
            ax.plot(t, a * np.log(t) + b, "-", color=color, lw=5, alpha=0.35)
            label = f"{name}: a = {a:.2f}"
        ax.plot(steps, mean, line, marker=marker, ms=3, color=color, lw=1.2, label=label)
    _log_x(ax)
    ax.set_xlabel("weight updates t (log scale)")
    ax.set_ylabel("||w_t - w_0||")
    ax.set_title(f"{title}\ndistance from initialization, mean over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", title="row: slope a of a·log t + b")
    fig.text(0.5, 0.01, "Thick lines: a·log t + b fitted on the last decade before each row's "
             "first learning-rate drop (the high-rate phase).", ha="center", fontsize="small")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plot_interpolation(interpolations, title=""):
    """Keskar's 1-D plot between the small- (alpha 0) and large-batch (alpha 1) solutions.

    Training and test loss (log scale, left) and accuracy (right) along
    `(1 - alpha) w_SB + alpha w_LB`; a thin line per seed, the mean over
    seeds thick, markers at the evaluated alphas.
    """
    fig, (ax_loss, ax_acc) = _figure(11, 4.6, ncols=2)
    first = interpolations[0]
    alphas = np.asarray(first["alphas"], np.float64)
    for split, color, line in (("train", "tab:blue", "-"), ("test", "tab:red", "--")):
        for ax, key, scale in ((ax_loss, "loss", 1.0), (ax_acc, "accuracy", 100.0)):
            values = np.array([entry[f"{split}_{key}"] for entry in interpolations],
                              np.float64) * scale
            for v in values:
                ax.plot(alphas, v, line, color=color, lw=0.7, alpha=0.35)
            ax.plot(alphas, values.mean(axis=0), line, color=color, lw=2, marker="o", ms=3,
                    label=f"{split} {key} (mean of {len(values)} seeds; thin: each seed)")
    for ax in (ax_loss, ax_acc):
        for x in (0.0, 1.0):
            ax.axvline(x, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(f"alpha: 0 = {first['small_batch_row']}, 1 = {first['large_batch_row']}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy (log scale)")
    ax_acc.set_ylabel("accuracy (%)")
    seeds = ", ".join(str(entry["seed"]) for entry in interpolations)
    fig.suptitle(f"{title}\n1-D interpolation {first['small_batch_row']} <-> "
                 f"{first['large_batch_row']}, seeds {seeds}")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def _row_points(row, key):
    values = [v for v in row["per_seed"][key] if v is not None]
    if not values:
        return None, None
    return 100 * float(np.mean(values)), 100 * float(np.std(values, ddof=1) if len(values) > 1
                                                     else 0.0)


def ghost_rows(results):
    """`[(ghost size, row)]` of the ghost-size sweep at +LR: `LB+LR+GBN`, the sweep, `LB+LR`.

    `LB+LR` is plain BN: one ghost of the whole batch `B_L`.
    """
    rows = {r["name"]: r for r in results["regimes"]}
    out = [(r["ghost_batch_size"], r) for r in results["regimes"] if r.get("group") == GHOST]
    if "LB+LR+GBN" in rows:
        out.append((rows["LB+LR+GBN"]["ghost_batch_size"], rows["LB+LR+GBN"]))
    if "LB+LR" in rows:
        out.append((rows["LB+LR"]["batch_size"], rows["LB+LR"]))
    return sorted(out, key=lambda pair: pair[0])


def plot_ghost_size(results, title=""):
    """Validation and test accuracy at the large batch against the ghost batch size."""
    fig, (ax,) = _figure(7.5, 4.8)
    pairs = ghost_rows(results)
    if pairs:
        sizes = [g for g, _ in pairs]
        for key, label, marker, line in (("validation_accuracy", "validation", "o", "-"),
                                         ("test_accuracy", "test", "s", "--")):
            points = [_row_points(r, key) for _, r in pairs]
            ok = [i for i, (m, _) in enumerate(points) if m is not None]
            ax.errorbar([sizes[i] for i in ok], [points[i][0] for i in ok],
                        yerr=[points[i][1] for i in ok], fmt=line, marker=marker, capsize=3,
                        label=f"{label} accuracy (LB+LR)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{g}\n(plain BN)" if r["ghost_batch_size"] == 0 else str(g)
                            for g, r in pairs])
        n = sorted({len(r["seeds"]) for _, r in pairs})
        ax.set_title(f"{title}\nghost batch size at B_L = {pairs[-1][0]} "
                     f"(n = {'/'.join(map(str, n))} seeds, mean ± std)")
    rows = {r["name"]: r for r in results["regimes"]}
    if "SB" in rows:
        sb, _ = _row_points(rows["SB"], "test_accuracy")
        ax.axhline(sb, color="tab:blue", ls=":", lw=1, label=f"SB test accuracy ({sb:.1f})")
    ax.set_xlabel("ghost batch size (log scale; moving statistics: one step per ghost batch)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def _pm_text(mean, std):
    return "n/a" if mean is None else f"{mean:.1f} ± {std:.1f}"


def plot_ablations(results, title=""):
    """Validation and test accuracy of every row (mean ± std), grouped, SB as reference."""
    rows = results["regimes"]
    fig, (ax,) = _figure(10.5, 0.42 * len(rows) + 2.2)
    y = np.arange(len(rows))[::-1].astype(float)
    for offset, key, label, color in ((0.18, "validation_accuracy", "validation", "tab:gray"),
                                      (-0.18, "test_accuracy", "test", "tab:blue")):
        means, errs = zip(*[_row_points(r, key) for r in rows]) if rows else ((), ())
        means = [np.nan if m is None else m for m in means]
        errs = [0.0 if e is None else e for e in errs]
        ax.barh(y + offset, means, height=0.34, xerr=errs, color=color, alpha=0.8,
                label=f"{label} accuracy", capsize=2)
    names = {r["name"]: r for r in rows}
    if "SB" in names:
        sb, _ = _row_points(names["SB"], "test_accuracy")
        ax.axvline(sb, color="k", ls=":", lw=1, label=f"SB test ({sb:.1f})")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['name']}  (n={len(r['seeds'])})" for r in rows], fontsize="small")
    values = [v for r in rows for k in ("validation_accuracy", "test_accuracy")
              for v in [_row_points(r, k)[0]] if v is not None]
    low, high = (max(0.0, min(values) - 5.0), min(100.0, max(values) + 3.0)) if values else (0, 100)
    ax.set_xlim(low, high)
    previous = None
    for yi, r in zip(y, rows):  # a rule and the group's name where a group starts
        group = r.get("group")
        if group != previous:
            if previous is not None:
                ax.axhline(yi + 0.5, color="k", lw=0.5, alpha=0.5)
            if group:
                ax.text(low + 0.3, yi + 0.43, group, fontsize="x-small", style="italic",
                        va="bottom", color="0.3")
        previous = group
    right = ax.twinx()  # the test accuracy in numbers, on the right
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y)
    right.set_yticklabels([("test " + _pm_text(*_row_points(r, "test_accuracy")))
                           for r in rows], fontsize="small")
    ax.set_xlabel("accuracy (%), mean ± std over the row's seeds (n)")
    ax.set_title(f"{title}\nevery row: validation and test accuracy")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06 - 1.2 / fig.get_figheight() / 4),
              ncol=3, fontsize="small")
    fig.tight_layout()
    return fig


def write_figures(runs, results, interpolations, output_dir, title=""):
    """Writes the PNG figures into `output_dir`; returns their file names."""
    os.makedirs(output_dir, exist_ok=True)
    figures = {"test_error.png": plot_test_error(runs, title),
               "weight_distance.png": plot_weight_distance(runs, title)}
    if interpolations:
        figures["interpolation.png"] = plot_interpolation(interpolations, title)
    if len(ghost_rows(results)) > 1:
        figures["ghost_size.png"] = plot_ghost_size(results, title)
    if len(results["regimes"]) > 1:
        figures["ablations.png"] = plot_ablations(results, title)
    for filename, fig in figures.items():
        fig.savefig(os.path.join(output_dir, filename), dpi=110)
    return sorted(figures)
