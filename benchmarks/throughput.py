"""Recipe training throughput against input-pipeline throughput.

For each (recipe, model, normalization) it runs the real recipe entry point
in a subprocess with `--synthetic` (random tensors of the right shapes, no
input cost) for a few steps and reads the trained images per second from its
`result.json` (the trainer times the steps after the first, compiled, one).
Then it measures what the recipe's real input pipeline delivers, on
tensorflow-datasets' mock data (the real decode/augment/batch code on fake
examples), with `tfgap.data.measure_throughput`. Training is input-bound when
the pipeline delivers fewer examples per second than the model consumes.

Prints a Markdown table. Usage:

    python benchmarks/throughput.py                      # ResNet-44 and ResNet-50, BN and GBN
    python benchmarks/throughput.py --gpu_extras         # + ResNet-50 mixed precision and XLA
    python benchmarks/throughput.py --only=cifar10       # one recipe
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CASES = [
    # recipe, model, batch, ghost, steps, extra flags
    ("cifar10", "resnet44", 128, 0, 6, []),
    ("cifar10", "resnet44", 128, 32, 6, []),
    ("imagenet", "resnet50", 16, 0, 3, []),
    ("imagenet", "resnet50", 16, 8, 3, []),
]
GPU_EXTRAS = [
    ("imagenet", "resnet50", 256, 32, 20, ["--mixed_precision", "--jit_compile"]),
    ("imagenet", "resnet50", 256, 0, 20, ["--mixed_precision", "--jit_compile"]),
]
TRAIN_EXAMPLES = {"cifar10": 50000, "imagenet": 1281167}
DATASETS = {"cifar10": "cifar10", "imagenet": "imagenet2012"}


def recipe_throughput(recipe, model, batch, ghost, steps, extra):
    with tempfile.TemporaryDirectory() as tmp:
        epochs = steps * batch / TRAIN_EXAMPLES[recipe]
        command = [
            sys.executable, "-m", f"tfgap.recipes.{recipe}", "--synthetic",
            f"--model={model}", f"--batch_size={batch}", f"--base_batch_size={batch}",
            f"--ghost_batch_size={ghost}", f"--epochs={epochs:.8f}",
            f"--model_dir={tmp}/run", "--noexport", "--verbose=0",
            f"--mock_examples={batch}",  # with --synthetic: the examples evaluated
        ] + extra
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return None, " ".join(tail)
        with open(os.path.join(tmp, "run", "result.json")) as f:
            return json.load(f)["throughput"], None


def pipeline_throughput(recipe, batch):
    import tfgap.data

    dataset = tfgap.data.build_dataset(
        DATASETS[recipe], "train", batch_size=batch, training=True, mock_data=True,
        mock_examples=max(4 * batch, 256), repeat=True, seed=0)
    return tfgap.data.measure_throughput(dataset, num_batches=20)["examples_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu_extras", action="store_true",
                        help="also ResNet-50 at batch 256 with mixed precision and XLA")
    parser.add_argument("--only", default=None, help="run only this recipe")
    args = parser.parse_args()
    cases = CASES + (GPU_EXTRAS if args.gpu_extras else [])
    if args.only:
        cases = [c for c in cases if c[0] == args.only]

    print(f"{platform.machine()}, {os.cpu_count()} CPU cores; Python {platform.python_version()}")
    print("| recipe | model | batch | ghost | flags | train images/s (synthetic) "
          "| input pipeline images/s | input-bound? |")
    print("|---|---|---|---|---|---|---|---|")
    pipelines = {}
    for recipe, model, batch, ghost, steps, extra in cases:
        train, error = recipe_throughput(recipe, model, batch, ghost, steps, extra)
        if (recipe, batch) not in pipelines:
            pipelines[(recipe, batch)] = pipeline_throughput(recipe, batch)
        feed = pipelines[(recipe, batch)]
        if train is None:
            print(f"| {recipe} | {model} | {batch} | {ghost or '-'} | {' '.join(extra)} | "
                  f"failed: {error} | {feed:.0f} | - |")
            continue
        print(f"| {recipe} | {model} | {batch} | {ghost or '-'} | {' '.join(extra) or '-'} | "
              f"{train:.1f} | {feed:.0f} | {'yes' if feed < train else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
