"""Aggregates a study's runs into its tables: `results.json`, `results.csv`, `results.md`, stdout.

Every number comes from the files the runs wrote: the trainer's
`result.json` (accuracies, steps, wall time, weight distance and its
log-spaced record) and the study's `study.json` (the per-example test
correctness, the measures of the minimum, the convergence stop, and the
accuracies of the rows derived from the same training with other BN
moving-statistics rules). Accuracy is reported on the validation split
(carved from the training split) and on the test split; any choice made with
the study (`tfgap.study.sweep`) uses the validation numbers, and the test
numbers are only reported. Per row, over its seeds:

    mean = sum(x_s) / S,   std = sqrt(sum((x_s - mean)**2) / (S - 1))   (0 when S = 1)

The diffusion slope of a run is the least-squares fit of Hoffer et al.'s
"ultra-slow diffusion" law to its record of `(t, ||w_t - w_0||)` in the
initial high-learning-rate phase (before the first rate drop, at step `T1`;
the whole run when the rate never drops), over that phase's last decade:

    ||w_t - w_0|| ~ a * log(t) + b,   T1 / 10 <= t <= T1   (optimizer steps)

fitted by `tfgap.diagnostics.fit_diffusion_slope`; `a` is reported. The same
points are also fitted by a random walk's law `c * sqrt(t) + d`, and both
fits' root-mean-square residuals are kept (the claim "weight distance grows
as log t" compares them).
"""

import csv
import json
import math
import os

import numpy as np

from tfgap import diagnostics
from tfgap.study.regimes import run_dir
from tfgap.training import read_result, write_json

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
STUDY_RECORD = "study.json"

# The trainer's per-epoch log keys (its `history.json` entries and the logs its callbacks get
# at `on_epoch_end`), named here and nowhere else in the study.
_EPOCH_KEYS = {("validation", "loss"): "val_loss",
               ("validation", "accuracy"): "val_accuracy",
               ("test", "loss"): "test_loss", ("test", "accuracy"): "test_accuracy",
               ("train", "loss"): "loss", ("train", "accuracy"): "accuracy",
               ("train", "learning_rate"): "learning_rate"}


def epoch_value(logs, split, metric):
    """`split`'s `metric` in one epoch's logs (a trainer history entry), or None.

    The one place where the study reads the trainer's per-epoch keys.

    Example:

    >>> epoch_value({"val_accuracy": 0.9, "test_accuracy": 0.8}, "validation", "accuracy")
    0.9
    >>> epoch_value({}, "test", "loss") is None
    True
    """
    return (logs or {}).get(_EPOCH_KEYS[(split, metric)])


def pack_correct(correct):
    """Per-example correctness (bools) as a hex string, 8 examples a byte (`unpack_correct`).

    Example:

    >>> pack_correct([True, False, True, True, False, False, False, False, True])
    'b080'
    >>> unpack_correct('b080', 9).astype(int).tolist()
    [1, 0, 1, 1, 0, 0, 0, 0, 1]
    """
    return np.packbits(np.asarray(correct, bool)).tobytes().hex()


def unpack_correct(text, count):
    """The `count` booleans `pack_correct` packed into `text`."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), np.uint8))[:int(count)].astype(bool)

# (column, per-run key) of the quantities averaged over seeds.
_MEASURES = (
    ("validation_accuracy", "validation_accuracy"),
    ("test_accuracy", "test_accuracy"),
    ("train_accuracy", "train_accuracy"),
    ("train_loss", "train_loss"),
    ("updates", "updates"),
    ("epochs", "epochs"),
    ("wall_time", "wall_time"),
    ("weight_distance", "weight_distance"),
    ("diffusion_slope", "diffusion_slope"),
    ("sharpness", "sharpness"),
    ("relative_sharpness", "relative_sharpness"),
    ("hessian_top_eigenvalue", "hessian_top_eigenvalue"),
    ("subset_loss", "subset_loss"),
    ("weight_norm", "weight_norm"),
    ("final_learning_rate", "final_learning_rate"),
    ("stability_bound", "stability_bound"),
)

CSV_COLUMNS = (
    "name", "group", "reference", "trained_as", "seeds", "batch_size", "ghost_batch_size",
    "bn_momentum", "moving_update", "optimizer", "lars_eta", "sam_rho", "lr", "lr_scaling",
    "regime_adaptation", "until_converged", "validation_examples",
    *(f"{column}_{stat}" for column, _ in _MEASURES for stat in ("mean", "std")),
)


def diffusion_fit(distance_record, high_lr_end=None):
    """Fits `a * log t + b` (and `c * sqrt t + d`) to the last decade of the high-rate phase.

    Args:
        distance_record: `[[t, ||w_t - w_0||], ...]` (the trainer's record).
        high_lr_end: `T1`, the step of the first learning-rate drop (None:
            the last recorded step).

    Returns:
        None with fewer than two distinct steps in the window, else a dict:
        `slope` (`a`), `intercept` (`b`), `window` (`[T1 / 10, T1]`, clipped
        to the record), `points`, `rmse_log` and `rmse_sqrt` (root-mean-square
        residuals of the two least-squares fits on the same points).

    Example:

    >>> import math
    >>> fit = diffusion_fit([[t, 2.0 * math.log(t) + 1.0] for t in (1, 5, 10, 20, 50, 100)])
    >>> round(fit["slope"], 6), round(fit["intercept"], 6), fit["window"], fit["points"]
    (2.0, 1.0, [10.0, 100.0], 4)
    """
    pairs = [(float(s), float(d)) for s, d in distance_record if s >= 1]
    if not pairs:
        return None
    last = max(s for s, _ in pairs)
    end = last if high_lr_end is None else min(float(high_lr_end), last)
    start = max(1.0, end / 10.0)
    pairs = [(s, d) for s, d in pairs if start <= s <= end]
    if len({s for s, _ in pairs}) < 2:
        return None
    steps, distances = (np.array(v, np.float64) for v in zip(*pairs))
    a, b = diagnostics.fit_diffusion_slope(steps, distances, min_step=start)
    rmse_log = float(np.sqrt(np.mean((a * np.log(steps) + b - distances) ** 2)))
    c, d = np.polyfit(np.sqrt(steps), distances, 1)
    rmse_sqrt = float(np.sqrt(np.mean((c * np.sqrt(steps) + d - distances) ** 2)))
    return {"slope": a, "intercept": b, "window": [start, end], "points": int(len(steps)),
            "rmse_log": rmse_log, "rmse_sqrt": rmse_sqrt}


def diffusion_slope(distance_record, high_lr_end=None):
    """The slope `a` of `diffusion_fit` (None when it cannot be fitted).

    Example:

    >>> import math
    >>> round(diffusion_slope([[t, 0.5 * math.log(t)] for t in (1, 2, 5, 10)]), 6)
    0.5
    """
    fit = diffusion_fit(distance_record, high_lr_end)
    return None if fit is None else fit["slope"]


def high_lr_end(config, steps_per_epoch, stretch):
    """`T1`: the step of the first learning-rate drop (None when the rate never drops).

    Example:

    >>> high_lr_end({"lr_boundaries": [8.0]}, steps_per_epoch=6, stretch=16.0)
    768
    """
    boundaries = config.get("lr_boundaries") or []
    if not boundaries:
        return None
    return int(math.floor(float(boundaries[0]) * float(stretch) * steps_per_epoch + 0.5))


def load_run(model_dir, derived=None):
    """One run's record: the trainer's `result.json` merged with `study.json`.

    Args:
        model_dir: the run's directory.
        derived: None for the row trained there, or the name of a row derived
            from the same training (other BN moving-statistics settings): its
            accuracies and correctness are those `study.json` holds for it, its
            config the trained one's with its `bn_momentum` and
            `moving_update`; the training's numbers are shared.

    Returns:
        A dict with `regime`, `seed`, `model_dir`, `trained_as` (`derived`'s
        source row, else None), `validation_accuracy` (None without a
        validation split), `validation_examples`, `test_accuracy`,
        `test_correct` (`pack_correct` of the per-example test correctness)
        and `test_examples`, `train_accuracy`, `train_loss`, `updates`
        (optimizer steps), `epochs` (epochs of the data trained), `wall_time`,
        `weight_distance`, `diffusion` (see `diffusion_fit`),
        `diffusion_slope`, `high_lr_end`, `final_learning_rate` (the rate at
        the end) and `stability_bound` (`2 (1 + momentum) / rate`), the
        measures of `study.json` (`sharpness`, `relative_sharpness`,
        `hessian_top_eigenvalue`, `subset_loss`, `subset_accuracy`,
        `weight_norm`; None when not measured), `stopped`, `history` (the
        trainer's per-epoch entries; empty for a derived row, whose moving
        statistics were not evaluated during training), `distance_record` and
        `config`.
    """
    result = read_result(model_dir)
    study_path = os.path.join(model_dir, STUDY_RECORD)
    study = {}
    if os.path.exists(study_path):
        with open(study_path) as f:
            study = json.load(f)
    measures = study.get("measures") or {}
    config = dict(result["config"])
    evaluation = study.get("evaluation") or {}
    validation = (result.get("validation") or {}).get("accuracy")
    test = result["test"]["accuracy"]
    if derived is not None:
        entry = (study.get("derived") or {}).get(derived)
        if entry is None:
            raise ValueError(f"Expected {model_dir}/{STUDY_RECORD} to hold the derived row "
                             f"{derived!r}. Received rows: {sorted(study.get('derived') or {})}")
        config.update(bn_momentum=entry["bn_momentum"], moving_update=entry["moving_update"])
        evaluation = entry["evaluation"]
        validation, test = evaluation.get("validation_accuracy"), evaluation["test_accuracy"]
        measures = {}
    record = result.get("distance_record") or []
    t1 = high_lr_end(config, result["steps_per_epoch"], result.get("stretch", 1.0))
    fit = diffusion_fit(record, t1)
    history = result.get("history") or []
    rate = epoch_value(history[-1], "train", "learning_rate") if history else None
    return {
        "regime": derived or study.get("regime"),
        "seed": config["seed"],
        "model_dir": model_dir,
        "trained_as": study.get("regime") if derived is not None else None,
        "status": result["status"],
        "validation_accuracy": validation,
        "validation_examples": result.get("num_validation_examples"),
        "test_accuracy": test,
        "test_correct": evaluation.get("test_correct"),
        "test_examples": evaluation.get("test_examples"),
        "train_accuracy": result["train"]["accuracy"],
        "train_loss": result["train"].get("loss"),
        "updates": result["global_step"],
        "total_steps": result.get("total_steps"),
        "epochs": result["epochs_completed"],
        "steps_per_epoch": result["steps_per_epoch"],
        "wall_time": result["wall_time"],
        "weight_distance": result["weight_distance"],
        "high_lr_end": t1,
        "diffusion": fit,
        "diffusion_slope": None if fit is None else fit["slope"],
        "final_learning_rate": rate,
        "stability_bound": (None if not rate else
                            2.0 * (1.0 + float(config.get("momentum", 0.9))) / float(rate)),
        "sharpness": measures.get("sharpness"),
        "relative_sharpness": measures.get("relative_sharpness"),
        "hessian_top_eigenvalue": measures.get("hessian_top_eigenvalue"),
        "subset_loss": measures.get("subset_loss"),
        "subset_accuracy": measures.get("subset_accuracy"),
        "weight_norm": study.get("weight_norm"),
        "stopped": study.get("stopped"),
        "history": history if derived is None else [],  # its evaluations are the source's
        "distance_record": record,
        "config": config,
    }


def load_runs(output_dir, *, regimes, seeds, sources=None):
    """`{regime: [run record per seed]}` from `<output_dir>/runs/<slug>/seed<k>`.

    Args:
        output_dir: the study's directory.
        regimes: the row names, in order.
        seeds: the seeds of every row, or `{name: seeds}` per row.
        sources: `{derived row: trained row}`: a derived row is read from its
            trained row's directory (see `load_run`).
    """
    sources = sources or {}
    out = {}
    for name in regimes:
        out[name] = []
        for seed in (seeds[name] if isinstance(seeds, dict) else seeds):
            source = sources.get(name)
            record = load_run(run_dir(output_dir, source or name, seed),
                              derived=name if source else None)
            record["regime"] = name
            out[name].append(record)
    return out


def mean_std(values):
    """`(mean, sample std)` of the non-None values; `(None, None)` if there are none.

    Example:

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_std([0.5])
    (0.5, 0.0)
    """
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(runs, regimes=None):
    """The `results.json` dict of a study: one row per regime, in order.

    Args:
        runs: `{regime: [run records]}` (see `load_runs`).
        regimes: `{name: Regime}` (group, reference, until_converged of each
            row; see `tfgap.study.regimes`), or None.

    Returns:
        `{"regimes": [row, ...]}`; a row has `name`, `group`, `reference`,
        `until_converged`, `seeds`, the row's settings (`batch_size`,
        `ghost_batch_size`, `bn_momentum`, `moving_update`, `optimizer`,
        `lars_eta`, `sam_rho`, `lr` (the peak rate after scaling),
        `lr_scaling`, `regime_adaptation`), `trained_as` (the row whose
        training it shares, None when trained itself), `long`,
        `validation_examples`, for every measure `<measure>_mean` and
        `<measure>_std`, the per-seed values under `per_seed` (also
        `model_dir`, `diffusion`, `stopped`, `test_correct` and
        `test_examples`), and `updates` (the mean, rounded) and `epochs` (the
        mean).
    """
    regimes = regimes or {}
    rows = []
    for name, records in runs.items():
        if not records:
            continue
        config = records[0]["config"]
        k = config["batch_size"] / config["base_batch_size"]
        scale = {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[config["lr_scaling"]]
        regime = regimes.get(name)
        row = {
            "name": name,
            "group": getattr(regime, "group", None),
            "reference": getattr(regime, "reference", None),
            "until_converged": bool(getattr(regime, "until_converged", False)),
            "long": bool(getattr(regime, "long", False)),
            "trained_as": records[0].get("trained_as"),
            "seeds": [r["seed"] for r in records],
            "batch_size": config["batch_size"],
            "ghost_batch_size": config["ghost_batch_size"],
            "bn_momentum": config.get("bn_momentum"),
            "moving_update": config.get("moving_update"),
            "optimizer": config.get("optimizer", "sgd"),
            "lars_eta": config.get("lars_eta") if config.get("optimizer") == "lars" else None,
            "sam_rho": config.get("sam_rho") or None,
            "lr": config["lr_values"][0] * config.get("lr_multiplier", 1.0) * scale,
            "lr_scaling": config["lr_scaling"],
            "regime_adaptation": config["regime_adaptation"],
            "validation_examples": records[0].get("validation_examples"),
        }
        for column, key in _MEASURES:
            row[f"{column}_mean"], row[f"{column}_std"] = mean_std(
                [r.get(key) for r in records])
        row["updates"] = int(round(row["updates_mean"]))
        row["epochs"] = row["epochs_mean"]
        row["per_seed"] = {key: [r.get(key) for r in records] for _, key in _MEASURES}
        for key in ("model_dir", "diffusion", "stopped", "high_lr_end", "test_correct",
                    "test_examples"):
            row["per_seed"][key] = [r.get(key) for r in records]
        rows.append(row)
    return {"regimes": rows}


def write_results(results, output_dir):
    """Writes `results.json` (everything), `results.csv` (one row per regime), `results.md`."""
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, RESULTS_JSON), results)
    with open(os.path.join(output_dir, RESULTS_CSV), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in results["regimes"]:
            writer.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})
    with open(os.path.join(output_dir, RESULTS_MD), "w") as f:
        f.write(format_markdown(results) + "\n")


# -- text tables ---------------------------------------------------------------------------

_HEADERS = ("regime", "n", "batch", "ghost", "bn", "rule", "lr", "updates", "epochs",
            "val acc %", "test acc %", "train acc %", "time s", "||w-w0||", "slope", "training")


def _cells(row):
    """One row's formatted table cells, in `_HEADERS` order."""
    rule = row.get("moving_update") if row.get("ghost_batch_size") else None
    return (
        row["name"], str(len(row.get("seeds") or ())), str(row["batch_size"]),
        str(row["ghost_batch_size"] or "-"), f"{row.get('bn_momentum') or 0:g}",
        rule or "-", f"{row['lr']:.4g}", str(row["updates"]), f"{row['epochs']:.1f}",
        pm(row.get("validation_accuracy_mean"), row.get("validation_accuracy_std"), 100.0, 1),
        pm(row["test_accuracy_mean"], row["test_accuracy_std"], 100.0, 1),
        pm(row["train_accuracy_mean"], row["train_accuracy_std"], 100.0, 1),
        pm(row["wall_time_mean"], row["wall_time_std"], 1.0, 0),
        pm(row["weight_distance_mean"], row["weight_distance_std"], 1.0, 1),
        pm(row["diffusion_slope_mean"], row["diffusion_slope_std"], 1.0, 2),
        f"= {row['trained_as']}" if row.get("trained_as") else "own",
    )


_KESKAR_HEADERS = ("regime", "n", "epochs", "updates", "stopped", "train acc %",
                   "subset loss", "final lr", "2(1+b)/lr", "top Hessian eig.", "sharpness",
                   "rel. sharpness", "||w||")


def _keskar_cells(row):
    reasons = sorted({(s or {}).get("reason", "epochs") for s in row["per_seed"]["stopped"]})
    return (
        row["name"], str(len(row["seeds"])), pm(row["epochs_mean"], row["epochs_std"], 1.0, 1),
        pm(row["updates_mean"], row["updates_std"], 1.0, 0), "/".join(reasons),
        pm(row["train_accuracy_mean"], row["train_accuracy_std"], 100.0, 2),
        pm(row["subset_loss_mean"], row["subset_loss_std"], 1.0, 4),
        _g(row.get("final_learning_rate_mean")), _g(row.get("stability_bound_mean")),
        pm(row["hessian_top_eigenvalue_mean"], row["hessian_top_eigenvalue_std"], 1.0, 2),
        pm(row["sharpness_mean"], row["sharpness_std"], 1.0, 2),
        pm(row.get("relative_sharpness_mean"), row.get("relative_sharpness_std"), 1.0, 3),
        pm(row.get("weight_norm_mean"), row.get("weight_norm_std"), 1.0, 1),
    )


def _g(value):
    return "n/a" if value is None else f"{value:.3g}"


def keskar_rows(results):
    """The rows whose minimum was measured (those with a Hessian eigenvalue)."""
    return [r for r in results["regimes"] if r.get("hessian_top_eigenvalue_mean") is not None]


def _fixed_width(headers, lines, left=1):
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return [fmt(headers), "  ".join("-" * w for w in widths)], fmt


def format_table(results):
    """The study's table as fixed-width text (accuracies in percent, mean ± std over seeds).

    Rows are grouped (Table 1, the controls, the ablations) with a blank line
    between groups. `n` is the number of seeds of the row; `training` says
    whether the row was trained (`own`) or shares the training of another
    row (`= LB`: the same weights, other BN moving statistics).

    Example:

    >>> row = dict(name="SB", seeds=[0, 1], batch_size=32, ghost_batch_size=0,
    ...            bn_momentum=0.9, lr=0.05, updates=100, epochs=1.0,
    ...            validation_accuracy_mean=0.91, validation_accuracy_std=0.02,
    ...            test_accuracy_mean=0.9, test_accuracy_std=0.01,
    ...            train_accuracy_mean=1.0, train_accuracy_std=0.0, wall_time_mean=3.0,
    ...            wall_time_std=0.1, weight_distance_mean=5.0, weight_distance_std=0.2,
    ...            diffusion_slope_mean=1.5, diffusion_slope_std=0.1)
    >>> print(" ".join(format_table({"regimes": [row]}).splitlines()[2].split()[:15]))
    SB 2 32 - 0.9 - 0.05 100 1.0 91.0 ± 2.0 90.0 ± 1.0
    """
    rows = results["regimes"]
    lines = [_cells(row) for row in rows]
    out, fmt = _fixed_width(_HEADERS, lines)
    previous = None
    for row, cells in zip(rows, lines):
        group = row.get("group")
        if previous is not None and group != previous:
            out.append("")
        previous = group
        out.append(fmt(cells))
    return "\n".join(out)


def format_keskar_table(results):
    """The measured minima (Keskar et al.'s setting and the rows beside it) as fixed-width text."""
    rows = keskar_rows(results)
    if not rows:
        return ""
    lines = [_keskar_cells(row) for row in rows]
    out, fmt = _fixed_width(_KESKAR_HEADERS, lines)
    return "\n".join(out + [fmt(cells) for cells in lines])


def format_claims(claims, width=100):
    """The claims as text: the outcome and the claim on one line, then its numbers.

    Each claim shows its paired difference with its interval and test (the
    rows' test accuracies and what else was measured below it); a conclusion
    shows the outcomes of the claims it rests on.

    Example:

    >>> print(format_claims([{"claim": "A beats B", "outcome": "held",
    ...                       "interval": "+4.8 points [3.9, 5.7] (99.6%), Holm p<0.001",
    ...                       "test": "paired t over 5 seeds", "measured": "A 97, B 92"}]))
    held       A beats B
               +4.8 points [3.9, 5.7] (99.6%), Holm p<0.001; paired t over 5 seeds
               A 97, B 92
    """
    import textwrap  # noqa: PLC0415

    out = []
    for c in claims:
        out.append(f"{c['outcome']:<9}  {c['claim']}")
        numbers = "; ".join(t for t in (c.get("interval"), c.get("test")) if t)
        for text in (numbers, c.get("measured")):
            if text:
                out.extend(textwrap.wrap(text, width=width, initial_indent=" " * 11,
                                         subsequent_indent=" " * 13, break_on_hyphens=False))
    return "\n".join(out)


def markdown_table(headers, lines):
    """A Markdown table (`|` in cells escaped) as a list of lines."""
    def cell(text):
        return str(text).replace("|", "\\|")

    return (["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(cell(c) for c in cells) + " |" for cells in lines])


def claims_markdown(claims):
    """The claims as a Markdown table: outcome, claim, paired difference and test, measured."""
    return markdown_table(
        ("outcome", "claim", "paired difference [interval], test", "measured"),
        [(f"**{c['outcome']}**", c["claim"],
          "; ".join(t for t in (c.get("interval"), c.get("test")) if t),
          c.get("measured") or "") for c in claims])


def minima_markdown(results):
    """The measured minima (`keskar_rows`) as a Markdown table."""
    return markdown_table(_KESKAR_HEADERS, [_keskar_cells(r) for r in keskar_rows(results)])


def format_markdown(results):
    """The study's tables (and claims) as Markdown (`results.md`, docs)."""
    rows = results["regimes"]
    out = markdown_table(("group",) + _HEADERS,
                         [(r.get("group") or "",) + _cells(r) for r in rows])
    if keskar_rows(results):
        out += ["", "Measured minima (Keskar et al.'s setting and the rows beside it):", ""]
        out += minima_markdown(results)
    claims = results.get("claims")
    if claims:
        out += ["", "Claims:", ""]
        out += claims_markdown(claims)
    return "\n".join(out)


def pm(mean, std, scale, digits):
    """`"mean ± std"` of values times `scale` with `digits` decimals (`"n/a"` without a mean).

    Example:

    >>> pm(0.9612, 0.0031, 100.0, 1), pm(None, None, 1.0, 2)
    ('96.1 ± 0.3', 'n/a')
    """
    if mean is None:
        return "n/a"
    return f"{mean * scale:.{digits}f} ± {(std or 0.0) * scale:.{digits}f}"


def _csv_value(value):
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "" if value is None else value
