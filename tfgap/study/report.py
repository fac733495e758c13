"""Aggregates a study's runs into its table: `results.json`, `results.csv`, stdout.

Every number comes from the files the runs wrote: the trainer's
`result.json` (accuracies, steps, wall time, weight distance and its
log-spaced record) and the study's `study.json` (sharpness). Accuracy is
reported on the validation split (carved from the training split) and on the
test split; any choice made with the study (`tfgap.study.sweep`) uses the
validation numbers, and the test numbers are only reported. Per regime, over
the seeds:

    mean = sum(x_s) / S,   std = sqrt(sum((x_s - mean)**2) / (S - 1))   (0 when S = 1)

The diffusion slope of a run is the least-squares fit of Hoffer et al.'s
"ultra-slow diffusion" law to its record of `(t, ||w_t - w_0||)`:

    ||w_t - w_0|| ~ a * log(t) + b,   T / 10 <= t <= T (optimizer steps)

over the last decade of the run (`T` its last recorded step), and `a` is
reported (the fit of `tfgap.diagnostics.WeightDistance.diffusion_slope`).
"""

import csv
import json
import math
import os

import numpy as np

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"

# (column, per-run key) of the quantities averaged over seeds.
_MEASURES = (
    ("validation_accuracy", "validation_accuracy"),
    ("test_accuracy", "test_accuracy"),
    ("train_accuracy", "train_accuracy"),
    ("wall_time", "wall_time"),
    ("weight_distance", "weight_distance"),
    ("diffusion_slope", "diffusion_slope"),
    ("sharpness", "sharpness"),
)

CSV_COLUMNS = (
    "name", "seeds", "batch_size", "ghost_batch_size", "lr", "lr_scaling", "regime_adaptation",
    "epochs", "updates", "validation_examples",
    "validation_accuracy_mean", "validation_accuracy_std",
    "test_accuracy_mean", "test_accuracy_std", "train_accuracy_mean", "train_accuracy_std",
    "wall_time_mean", "wall_time_std", "weight_distance_mean", "weight_distance_std",
    "diffusion_slope", "diffusion_slope_std", "sharpness", "sharpness_std",
)


def diffusion_slope(distance_record, last_fraction=0.1):
    """The slope `a` of `distance = a * log(step) + b`, fitted on the run's last decade.

    The log law is asymptotic (the first updates move the weights almost
    linearly), so the fit uses the records at steps `t >= last_fraction * T`,
    `T` the last recorded step (`t >= 1` always): the last factor of 10 of
    the run with the default 0.1.

    Returns None when fewer than two distinct steps are left.

    Example:

    >>> import math
    >>> round(diffusion_slope([[t, 2.0 * math.log(t) + 1.0] for t in (1, 2, 5, 10)]), 6)
    2.0
    """
    pairs = [(float(s), float(d)) for s, d in distance_record if s >= 1]
    if not pairs:
        return None
    start = max(1.0, float(last_fraction) * max(s for s, _ in pairs))
    pairs = [(s, d) for s, d in pairs if s >= start]
    if len({s for s, _ in pairs}) < 2:
        return None
    steps, distances = np.array(pairs).T
    a, _ = np.polyfit(np.log(steps), distances, 1)
    return float(a)


def load_run(model_dir):
    """One run's record: the trainer's `result.json` merged with `study.json`.

    Returns:
        A dict with `regime`, `seed`, `model_dir`, `validation_accuracy`
        (None without a validation split), `validation_examples`,
        `test_accuracy`, `train_accuracy`, `updates` (optimizer steps), `epochs` (epochs of the
        data trained), `wall_time`, `weight_distance`, `diffusion_slope`,
        `sharpness`, `history`, `distance_record` and `config`.
    """
    with open(os.path.join(model_dir, "result.json")) as f:
        result = json.load(f)
    study_path = os.path.join(model_dir, "study.json")
    study = {}
    if os.path.exists(study_path):
        with open(study_path) as f:
            study = json.load(f)
    config = result["config"]
    return {
        "regime": study.get("regime"),
        "seed": config["seed"],
        "model_dir": model_dir,
        "status": result["status"],
        "validation_accuracy": (result.get("validation") or {}).get("accuracy"),
        "validation_examples": result.get("num_validation_examples"),
        "test_accuracy": result["test"]["accuracy"],
        "train_accuracy": result["train"]["accuracy"],
        "updates": result["global_step"],
        "epochs": result["epochs_completed"],
        "steps_per_epoch": result["steps_per_epoch"],
        "wall_time": result["wall_time"],
        "weight_distance": result["weight_distance"],
        "diffusion_slope": diffusion_slope(result.get("distance_record") or []),
        "sharpness": study.get("sharpness"),
        "history": result.get("history") or [],
        "distance_record": result.get("distance_record") or [],
        "config": config,
    }


def load_runs(output_dir, *, regimes, seeds):
    """`{regime: [run record per seed]}` from `<output_dir>/runs/<slug>/seed<k>`."""
    from tfgap.study.runner import run_dir

    out = {}
    for name in regimes:
        out[name] = []
        for seed in seeds:
            record = load_run(run_dir(output_dir, name, seed))
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


def summarize(runs):
    """The `results.json` dict of a study: one row per regime, in order.

    Args:
        runs: `{regime: [run records]}` (see `load_runs`).

    Returns:
        `{"regimes": [row, ...]}`; a row has `name`, `seeds`, the regime's
        settings (`batch_size`, `ghost_batch_size`, `lr` (the peak rate after
        scaling), `lr_scaling`, `regime_adaptation`), `updates`, `epochs`,
        `validation_examples` (the size of the validation split), and
        for every measure `<measure>_mean`, `<measure>_std` (sharpness and
        the diffusion slope as `sharpness`, `sharpness_std`, `diffusion_slope`,
        `diffusion_slope_std`), plus the per-seed values under `per_seed`.
    """
    rows = []
    for name, records in runs.items():
        if not records:
            continue
        config = records[0]["config"]
        k = config["batch_size"] / config["base_batch_size"]
        scale = {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[config["lr_scaling"]]
        row = {
            "name": name,
            "seeds": [r["seed"] for r in records],
            "batch_size": config["batch_size"],
            "ghost_batch_size": config["ghost_batch_size"],
            "lr": config["lr_values"][0] * config["lr_multiplier"] * scale,
            "lr_scaling": config["lr_scaling"],
            "regime_adaptation": config["regime_adaptation"],
            "updates": int(round(mean_std([r["updates"] for r in records])[0])),
            "epochs": mean_std([r["epochs"] for r in records])[0],
            "validation_examples": records[0].get("validation_examples"),
        }
        for column, key in _MEASURES:
            mean, std = mean_std([r[key] for r in records])
            if column in ("sharpness", "diffusion_slope"):
                row[column], row[f"{column}_std"] = mean, std
            else:
                row[f"{column}_mean"], row[f"{column}_std"] = mean, std
        row["per_seed"] = {key: [r[key] for r in records] for _, key in _MEASURES}
        row["per_seed"]["model_dir"] = [r["model_dir"] for r in records]
        rows.append(row)
    return {"regimes": rows}


def write_results(results, output_dir):
    """Writes `results.json` (everything) and `results.csv` (one row per regime)."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RESULTS_JSON)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)
    with open(os.path.join(output_dir, RESULTS_CSV), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in results["regimes"]:
            writer.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})


def format_table(results):
    """The study's table as fixed-width text (accuracies in percent, mean ± std).

    Example:

    >>> row = dict(name="SB", batch_size=32, ghost_batch_size=0, lr=0.03, updates=100,
    ...            epochs=1.0, validation_accuracy_mean=0.91, validation_accuracy_std=0.02,
    ...            test_accuracy_mean=0.9, test_accuracy_std=0.01,
    ...            train_accuracy_mean=1.0, train_accuracy_std=0.0, wall_time_mean=3.0,
    ...            wall_time_std=0.1, weight_distance_mean=5.0, weight_distance_std=0.2,
    ...            diffusion_slope=1.5, diffusion_slope_std=0.1, sharpness=2.0,
    ...            sharpness_std=0.5)
    >>> print(" ".join(format_table({"regimes": [row]}).splitlines()[2].split()[:12]))
    SB 32 - 0.0300 100 1.0 91.00 ± 2.00 90.00 ± 1.00
    """
    headers = _HEADERS
    lines = [_cells(row) for row in results["regimes"]]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(headers), "  ".join("-" * w for w in widths)]
    out += [fmt(line) for line in lines]
    return "\n".join(out)


def format_markdown(results):
    """The study's table as Markdown (for docs)."""
    out = ["| " + " | ".join(h.replace("|", "\\|") for h in _HEADERS) + " |",
           "|" + "---|" * len(_HEADERS)]
    out += ["| " + " | ".join(_cells(row)) + " |" for row in results["regimes"]]
    return "\n".join(out)


_HEADERS = ("regime", "batch", "ghost", "lr", "updates", "epochs", "val acc %", "test acc %",
            "train acc %", "time s", "||w-w0||", "slope", "sharpness")


def _cells(row):
    """One regime's formatted table cells, in `_HEADERS` order."""
    return (
            row["name"], str(row["batch_size"]), str(row["ghost_batch_size"] or "-"),
            f"{row['lr']:.4f}", str(row["updates"]), f"{row['epochs']:.1f}",
            _pm(row.get("validation_accuracy_mean"), row.get("validation_accuracy_std"), 100.0, 2),
            _pm(row["test_accuracy_mean"], row["test_accuracy_std"], 100.0, 2),
            _pm(row["train_accuracy_mean"], row["train_accuracy_std"], 100.0, 2),
            _pm(row["wall_time_mean"], row["wall_time_std"], 1.0, 0),
            _pm(row["weight_distance_mean"], row["weight_distance_std"], 1.0, 2),
            _pm(row["diffusion_slope"], row["diffusion_slope_std"], 1.0, 2),
            _pm(row["sharpness"], row["sharpness_std"], 1.0, 2),
    )


def _pm(mean, std, scale, digits):
    if mean is None:
        return "n/a"
    return f"{mean * scale:.{digits}f} ± {(std or 0.0) * scale:.{digits}f}"


def _csv_value(value):
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")
