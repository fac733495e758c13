"""The figure of an `--adaptive=batch` run: its global batch and AdaScale gain over the steps.

Reads the run's `result.json` (its per-epoch history and the controller's
decisions) and draws `docs/images/adaptive_batch.png`. The run itself is the
documented command (docs/adaptive.md):

    python -m tfgap.recipes.mnist1d --batch_size=50 --base_batch_size=50 \\
        --max_batch_size=800 --batch_decision_steps=2 --adaptive=batch --lr_scaling=none \\
        --model_dir=/tmp/adabatch --noexport --verbose=2
    python benchmarks/adaptive_batch_figure.py /tmp/adabatch
"""

import argparse
import json
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images",
                      "adaptive_batch.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", help="the --adaptive=batch run's --model_dir")
    parser.add_argument("--figure", default=FIGURE)
    args = parser.parse_args(argv)
    with open(os.path.join(args.model_dir, "result.json")) as f:
        result = json.load(f)
    history = result["history"]
    # Each segment (the steps between two decisions) runs at one batch.
    segments = result["batch_control"]["segments"]
    seg_ends = [s[0] for s in segments[1:]] + [result["global_step"]]
    ends = [e["step"] for e in history]
    fig = Figure(figsize=(8, 6.2))
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = (fig.add_subplot(3, 1, i) for i in (1, 2, 3))
    for (first, batch, *_), end in zip(segments, seg_ends):
        ax1.plot([first, end], [batch] * 2, color="C0", lw=2)
    for b, e in zip(ends, history):
        ax2.plot([b], [e["gain"]], "o", color="C1", ms=4)
        ax3.plot([b], [e["b_simple"]], "o", color="C2", ms=4)
    explore = [d for d in result["batch_control"]["decisions"] if d["reason"] == "explore"]
    ax1.plot([d["step"] for d in explore], [d["batch"] for d in explore], "v", color="C3",
             label="explored (untimed batch)")
    ax1.set(ylabel="global batch B", title=(
        f"--adaptive=batch on MNIST-1D from the batch-50 regime: {result['global_step']} steps, "
        f"test accuracy {result['test']['accuracy']:.3f}"))
    ax1.legend(fontsize=8)
    ax2.set(ylabel="gain (epoch's last step)")
    ax3.set(ylabel="B_simple", xlabel="step")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.set_xlim(0, 1.02 * ends[-1])
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)
    print(f"Wrote {args.figure}")


if __name__ == "__main__":
    main()
