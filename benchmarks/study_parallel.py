"""Wall time of the study's runs on one worker process against several, with the same numbers.

`tfgap.study.run_study` sends its runs (one per training and seed) to worker
processes, one TensorFlow thread each by default, so that the numbers do not
depend on how many workers there are. This benchmark runs the same study
(real MNIST-1D, the study's model and batches, a subset of its rows, fewer
epochs) in interleaved rounds:

- `serial`: `workers=1`, `threads=1` (the same numbers as `parallel`);
- `parallel`: `workers=N` (default: one per CPU core), `threads=1`;
- `serial_threads` (with `--threads_baseline`): `workers=1` and `N` TensorFlow
  threads, what one process would do on its own (its numbers differ in the
  last bits: sums in another order).

Each round trains every mode into a fresh directory, in a rotating order, and
checks that `serial` and `parallel` wrote identical per-seed numbers. The
table gives, per mode, the median over rounds of the study's wall time and
of its CPU time (this process and its workers), and the speed-up of each
mode's median wall time over `serial`'s. On a machine shared with other jobs
the wall times move with their load: the load average sampled during each
run is printed beside it (stderr) and stored in `--output`.

Usage:

    python benchmarks/study_parallel.py                        # 3 rounds, 2 seeds, 4 epochs
    python benchmarks/study_parallel.py --rounds=5 --threads_baseline --output=/tmp/b.json
"""

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROWS = ("SB", "LB", "LB (bn 0.99)", "LB+LR", "LB+LR+GBN", "LB+GBN", "LB+GBN (averaged)",
        "LB+LARS", "LB+SAM", "SB (LB's updates)", "LB (converged)")
KEYS = ("validation_accuracy", "test_accuracy", "test_correct", "train_loss", "weight_distance",
        "weight_norm", "sharpness", "hessian_top_eigenvalue")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=4.0,
                        help="SB's epochs (the rate drops at 2/3 of them)")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated study rows")
    parser.add_argument("--sharpness_examples", type=int, default=500)
    parser.add_argument("--threads_baseline", action="store_true",
                        help="also time one worker with --workers TensorFlow threads")
    parser.add_argument("--output", default=None, help="write the measurements here (JSON)")
    return parser.parse_args(argv)


def _base(epochs, model_dir):
    from tfgap.study import MNIST1D_DEFAULTS as d  # noqa: PLC0415
    from tfgap.study import small_batch_config  # noqa: PLC0415

    return small_batch_config(
        dataset="mnist1d", model=d["model"], model_dir=model_dir,
        small_batch_size=d["small_batch_size"], lr=d["lr"], epochs=epochs,
        lr_boundaries=[epochs * 2 / 3], lr_decay=d["lr_decay"], momentum=d["momentum"],
        weight_decay=d["weight_decay"], model_options=d["model_options"],
        validation_examples=d["validation_examples"], preemption=False, strategy="one_device")


def run_once(mode, args, root):
    from tfgap.study import MNIST1D_DEFAULTS as d  # noqa: PLC0415
    from tfgap.study import run_study  # noqa: PLC0415

    workers, threads = {"serial": (1, 1), "parallel": (args.workers, 1),
                        "serial_threads": (1, args.workers)}[mode]
    out = tempfile.mkdtemp(prefix=f"{mode}_", dir=root)
    started = time.time()
    results = run_study(
        _base(args.epochs, out), output_dir=out, large_batch_size=d["large_batch_size"],
        ghost_batch_size=d["ghost_batch_size"], seeds=range(args.seeds),
        long_seeds=range(min(args.seeds, 1)), workers=workers, threads=threads,
        regimes=args.rows.split(","), sharpness_examples=args.sharpness_examples,
        interpolation_points=0, stream=io.StringIO())
    wall = time.time() - started
    shutil.rmtree(out)
    numbers = {r["name"]: {k: r["per_seed"].get(k) for k in KEYS} for r in results["regimes"]}
    return {"mode": mode, "wall": wall, "runs_seconds": results["runs_seconds"],
            "cpu_seconds": results["machine"]["cpu_seconds"],
            "load_mean": results["machine"]["load_mean"], "numbers": numbers}


def main(argv=None):
    args = parse_args(argv)
    modes = ["serial", "parallel"] + (["serial_threads"] if args.threads_baseline else [])
    root = tempfile.mkdtemp(prefix="study_parallel_")
    rounds = []
    try:
        for r in range(args.rounds):
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            done = {}
            for mode in order:
                cpu_before = _children_cpu()
                m = run_once(mode, args, root)
                m["cpu_seconds"] = round(_children_cpu() - cpu_before, 1)
                done[mode] = m
                print(f"round {r + 1} {mode:>14}: {m['wall']:.1f} s wall, "
                      f"{m['cpu_seconds']:.1f} s CPU of the workers, load {m['load_mean']}",
                      file=sys.stderr, flush=True)
            same = done["serial"]["numbers"] == done["parallel"]["numbers"]
            if not same:
                raise SystemExit("serial and parallel runs differ: the results must not "
                                 "depend on the number of workers")
            rounds.append({mode: {k: v for k, v in m.items() if k != "numbers"}
                           for mode, m in done.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    serial = statistics.median(r["serial"]["wall"] for r in rounds)
    lines = ["| mode | workers x threads | median wall s | speed-up | median worker CPU s |",
             "|---|---|---|---|---|"]
    shape = {"serial": "1 x 1", "parallel": f"{args.workers} x 1",
             "serial_threads": f"1 x {args.workers}"}
    summary = {}
    for mode in modes:
        wall = statistics.median(r[mode]["wall"] for r in rounds)
        cpu = statistics.median(r[mode]["cpu_seconds"] for r in rounds)
        summary[mode] = {"median_wall": wall, "speedup": serial / wall, "median_cpu": cpu}
        lines.append(f"| {mode} | {shape[mode]} | {wall:.1f} | {serial / wall:.2f}x | "
                     f"{cpu:.1f} |")
    print("\n".join(lines))
    print(f"\n{args.rounds} rounds; {len(args.rows.split(','))} rows, {args.seeds} seeds, "
          f"{args.epochs:g} epochs; serial and parallel numbers identical in every round.")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "rounds": rounds, "summary": summary,
                       "cpu_count": os.cpu_count()}, f, indent=2)


def _children_cpu():
    import resource  # noqa: PLC0415

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
