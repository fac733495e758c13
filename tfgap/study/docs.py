"""The study's prose from its numbers: README and docs/study.md blocks rendered from results.json.

Every number the README's study section and `docs/study.md` quote from the
study's run, and every claim sentence with its outcome, interval and test, is
rendered here from the committed results file (`docs/study/results.json`),
never typed by hand. The rendered text sits between markers,

    <!-- study:NAME -->
    ...
    <!-- /study:NAME -->

and `python -m tfgap.study.docs` rewrites it; `--check` only compares (exit 1
and the names of the blocks that differ), which the tests do too. After a new
real run of the study, `--publish runs/study_mnist1d` first copies that run's
`results.json` to `docs/study/results.json` and its figures to
`docs/images/study_<name>.png`.

Blocks: `readme` (the README's section body), and in `docs/study.md` `run`
(the command, machine and time), `findings` (the claims as a numbered list,
as in the README), `table` (every row), `per-seed`, `minima` (the measured
minima and the interpolation), `claims` (the claims table), `papers` (this
run's row beside Hoffer et al.'s Table 1) and `keskar` (this run's
like-with-like sharpness beside Keskar et al.'s Table 3).
"""

import argparse
import json
import math
import os
import re
import shutil
import sys
import textwrap

from tfgap.study import report

RESULTS = os.path.join("docs", "study", "results.json")
README = "README.md"
DOCS = os.path.join("docs", "study.md")
IMAGES = os.path.join("docs", "images")
README_BLOCKS = ("readme",)
DOCS_BLOCKS = ("run", "findings", "table", "per-seed", "minima", "claims", "papers",
               "keskar")
# The rows of the README's short table, in this order (those the results have).
README_ROWS = ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA", "LB+RA", "SB (LB's updates)",
               "SB (bn 0.99)", "LB (bn 0.99)", "SB (LB's updates, bn 0.99)", "LB+RA (bn 0.99)",
               "LB+GBN (bn 0.99)", "LB+GBN (averaged, bn 0.99)", "LB+LARS", "LB+SAM")


def duration(seconds):
    """`"9 min 12 s"`.

    Example:

    >>> duration(552.4), duration(59.6)
    ('9 min 12 s', '1 min 0 s')
    """
    seconds = int(round(float(seconds)))
    return f"{seconds // 60} min {seconds % 60} s"


def _machine(results):
    m = results.get("machine") or {}
    gpus = "no GPU" if not m.get("gpus") else f"{m['gpus']} GPU(s)"
    system = (m.get("platform") or "").split("-")[0] or "an unknown system"
    return (f"a {m.get('cpu_count')}-core {m.get('processor') or 'CPU'} machine ({system}, "
            f"Python {m.get('python')}, TensorFlow {m.get('tensorflow')}, Keras "
            f"{m.get('keras')}, {gpus})")


def _span(seeds):
    seeds = list(seeds)
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def run_paragraph(results):
    """The command, what it trains, where and how long it took (a Markdown paragraph)."""
    s = results["settings"]
    base = s["base_config"]
    sizes = s.get("split_sizes") or {}
    rows = results["regimes"]
    trained = sum(1 for r in rows if not r.get("trained_as"))
    machine = results.get("machine") or {}
    load = ""
    if machine.get("load_mean") is not None:
        load = (f"; the 1-minute load average was {machine['load_mean']:g} on average and "
                f"{machine['load_max']:g} at most, other jobs included")
    cpu = ""
    if machine.get("cpu_seconds"):
        cpu = f", {duration(machine['cpu_seconds'])} of CPU time"
    command = s.get("command") or "python -m tfgap.recipes.study"
    commit = machine.get("tfgap_commit")
    at = f" at commit `{commit}`" if commit else ""
    return (
        f"`{command}` trains a 1-D CNN (`{base['model']}`) on MNIST-1D (generated locally: "
        f"{sizes.get('train', '?'):,} training, {sizes.get('validation', '?'):,} validation "
        f"and {sizes.get('test', '?'):,} test signals), small batch {base['batch_size']} "
        f"against large batch {s['large_batch_size']}, {base['epochs']:g} epochs, in "
        f"{len(rows)} rows from {trained} trainings (rows that differ only in how BN keeps "
        f"its moving statistics share one training): every row over seeds "
        f"{_span(s['seeds'])}, the ablations (ghost sizes, LARS, SAM) over seeds "
        f"{_span(s.get('ablation_seeds', s['seeds']))} and the `+RA` rows over seeds "
        f"{_span(s['long_seeds'])}. The real "
        f"run of that exact command{at} took **{duration(results['wall_time'])}** (wall clock, "
        f"{s['workers']} worker processes of {s['threads']} TensorFlow thread"
        f"{'s' if s['threads'] > 1 else ''}{cpu}) on {_machine(results)}{load}.")


def rows_table(results, names=README_ROWS):
    """The README's short table: the named rows' settings, seeds and accuracies."""
    rows = {r["name"]: r for r in results["regimes"]}
    lines = []
    for name in names:
        r = rows.get(name)
        if r is None:
            continue
        lines.append((name, str(r["batch_size"]), str(r["ghost_batch_size"] or "-"),
                      f"{r['bn_momentum']:g}", str(r["updates"]), str(len(r["seeds"])),
                      report.pm(r["validation_accuracy_mean"], r["validation_accuracy_std"],
                                 100.0, 1),
                      report.pm(r["test_accuracy_mean"], r["test_accuracy_std"], 100.0, 1)))
    return report.markdown_table(("row", "batch", "ghost", "BN momentum", "updates", "seeds",
                                  "val acc %", "test acc %"), lines)


def findings(results):
    """The claims as a numbered Markdown list: outcome, sentence, interval and test."""
    claims = results["claims"]
    number = {c["key"]: i for i, c in enumerate(claims, start=1)}
    out = []
    for i, c in enumerate(claims, start=1):
        if c["kind"] == "conclusion":
            parts = [f"{number[k]} ({next(x['outcome'] for x in claims if x['key'] == k)})"
                     for k in c["of"]]
            detail = ("rests on claim " + parts[0] if len(parts) == 1 else
                      "rests on claims " + ", ".join(parts[:-1]) + f" and {parts[-1]}")
        elif c.get("p_value") is None:
            detail = c["interval"]
        else:
            detail = f"{c['interval']}, {c['n']} paired seeds"
        out.append(f"{i}. **{c['outcome']}**: {c['claim']} — {detail}.")
    return out


def rule_sentence(results):
    """How the claims were decided, with the family's size and the margins."""
    s = results["settings"]
    effects = sum(1 for c in results["claims"] if c["kind"] == "effect"
                  and c.get("p_value") is not None)
    return (
        "Each claim is decided by a fixed rule, paired by seed (the same seed gives two rows "
        "the same initial weights and data order): an effect holds only when a paired t test, "
        f"Holm-corrected over the {effects} effect claims, rejects no difference at "
        f"{s.get('alpha', 0.05):g} with the claimed sign, and is not held when it rejects with "
        "the other sign or TOST puts it within the margin; an equality (\"closes\", "
        "\"matches\", \"does not hurt\") holds only by TOST within the margin it states "
        f"({100 * s.get('accuracy_margin', 0.01):g} point of test accuracy), and is not held "
        "when its 90% interval lies beyond it; anything else is undecided. Test accuracies "
        "carry the noise of the fixed test set beside the seeds'. Each line gives the paired "
        "difference, its interval (at Holm's step, or 90% for TOST) and the test's p-value.")


def minima(results):
    """The measured minima table and the interpolation's mean losses."""
    out = report.minima_markdown(results)
    inter = results.get("interpolations") or []
    if inter:
        alphas = inter[0]["alphas"]
        picks = [i for i, a in enumerate(alphas)
                 if any(math.isclose(a, t, abs_tol=1e-9) for t in (-0.25, 0.0, 0.5, 1.0, 1.25))]
        cells = []
        for split in ("train", "test"):
            means = [sum(e[f"{split}_loss"][i] for e in inter) / len(inter) for i in picks]
            cells.append(f"{split} " + ", ".join(
                f"{alphas[i]:g}: {m:.3g}" for i, m in zip(picks, means)))
        out += ["", f"Interpolation `(1 - alpha) {inter[0]['small_batch_row']} + alpha "
                    f"{inter[0]['large_batch_row']}`, seeds "
                    f"{', '.join(str(e['seed']) for e in inter)}, mean cross-entropy at alpha: "
                    + "; ".join(cells) + "."]
    return out


def papers_row(results):
    """This run's row of Hoffer et al.'s Table 1 (test accuracy %, mean over seeds)."""
    rows = {r["name"]: r for r in results["regimes"]}
    s = results["settings"]
    cells = [f"**{100 * rows[n]['test_accuracy_mean']:.1f}**" if n in rows else "n/a"
             for n in ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")]
    name = (f"**{s['base_config']['model']} (this run, SB {s['base_config']['batch_size']}, "
            f"LB {s['large_batch_size']})**")
    return f"| {name} | **MNIST-1D** | " + " | ".join(cells) + " |"


def keskar_line(results):
    """The like-with-like minima in Keskar's terms: SB / LB sharpness and the other measures."""
    rows = {r["name"]: r for r in results["regimes"]}
    small, large = rows.get("SB (converged)"), rows.get("LB (converged)")
    if small is None or large is None or small.get("sharpness_mean") is None:
        return "Not measured in this run."

    def pair(key, digits):
        return (f"{small[key + '_mean']:.{digits}g} / {large[key + '_mean']:.{digits}g}")

    return (f"`SB (converged)` / `LB (converged)`: Keskar's sharpness {pair('sharpness', 3)}, "
            f"scale-invariant sharpness {pair('relative_sharpness', 3)}, top Hessian "
            f"eigenvalue {pair('hessian_top_eigenvalue', 3)} (the stability bound "
            f"`2(1+b)/lr` at the rates they ended at: {pair('stability_bound', 3)}), training "
            f"loss on the measured signals {pair('subset_loss', 3)}, after "
            f"{pair('epochs', 3)} epochs.")


def per_seed(results):
    """Every row's per-seed test accuracy (%), one line per row."""
    out = []
    for r in results["regimes"]:
        values = ", ".join(f"{100 * v:.1f}" for v in r["per_seed"]["test_accuracy"])
        out.append(f"- {r['name']} (seeds {', '.join(map(str, r['seeds']))}): {values}")
    return out


WIDTH = 96


def wrap(text, indent=""):
    """A paragraph or a list item wrapped at `WIDTH` (Markdown reads it the same)."""
    return textwrap.fill(text, width=WIDTH, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def render(results):
    """`{block name: Markdown text}` of every block, from `results` (a results.json dict)."""
    items = [wrap(line, "   " if line[:1].isdigit() else "  ") for line in findings(results)]
    readme = [wrap(run_paragraph(results) + " Its results file is "
                   "[docs/study/results.json](docs/study/results.json), from which this section "
                   "is rendered (`python -m tfgap.study.docs`). Accuracy %, mean ± std over "
                   "seeds:"),
              "", *rows_table(results), "", wrap(rule_sentence(results)), "", *items]
    table = report.format_markdown({"regimes": results["regimes"]})
    return {
        "readme": "\n".join(readme),
        "run": wrap(run_paragraph(results)),
        "table": table,
        "per-seed": "\n".join(wrap(line, "  ") for line in per_seed(results)),
        "minima": "\n".join(wrap(line) if not line.startswith("|") else line
                            for line in minima(results)),
        "claims": "\n".join([wrap(rule_sentence(results)), "",
                             *report.claims_markdown(results["claims"])]),
        "findings": "\n".join(items),
        "papers": papers_row(results),
        "keskar": wrap(keskar_line(results)),
    }


def _pattern(name):
    """The block `name`: its opening marker line, its body (each line ending in a newline)
    and its closing marker."""
    return re.compile(rf"(<!-- study:{re.escape(name)} -->\n)(.*?)(<!-- /study:"
                      rf"{re.escape(name)} -->)", re.S)


def replace_blocks(text, blocks):
    """`text` with each `<!-- study:NAME -->` block's body replaced by `blocks[NAME]`.

    Raises:
        ValueError: a block's markers are missing from `text`.

    Example:

    >>> text = "a\\n<!-- study:x -->\\nold\\n<!-- /study:x -->\\nb"
    >>> print(replace_blocks(text, {"x": "new"}))
    a
    <!-- study:x -->
    new
    <!-- /study:x -->
    b
    """
    for name, body in blocks.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(f"Expected the markers <!-- study:{name} --> and "
                             f"<!-- /study:{name} --> in the text. Received none.")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(3), text,
                           count=1)
    return text


def stale_blocks(text, blocks):
    """The names of the blocks whose body in `text` differs from `blocks` (or is missing)."""
    stale = []
    for name, body in blocks.items():
        match = _pattern(name).search(text)
        if match is None or match.group(2) != body + "\n":
            stale.append(name)
    return stale


def publish(output_dir, root="."):
    """Copies a run's `results.json` and figures into the repository's docs."""
    os.makedirs(os.path.join(root, os.path.dirname(RESULTS)), exist_ok=True)
    shutil.copyfile(os.path.join(output_dir, report.RESULTS_JSON), os.path.join(root, RESULTS))
    with open(os.path.join(root, RESULTS)) as f:
        figures = json.load(f).get("figures") or []
    for name in figures:
        shutil.copyfile(os.path.join(output_dir, name),
                        os.path.join(root, IMAGES, f"study_{name}"))


def main(argv=None):
    """`python -m tfgap.study.docs [--check] [--publish DIR] [--root DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m tfgap.study.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only compare; exit 1 when a block differs")
    parser.add_argument("--publish", metavar="DIR",
                        help="first copy DIR's results.json and figures into the docs")
    parser.add_argument("--root", default=".", help="the repository's root (default: .)")
    args = parser.parse_args(argv)
    if args.publish:
        publish(args.publish, args.root)
    with open(os.path.join(args.root, RESULTS)) as f:
        blocks = render(json.load(f))
    stale = []
    for path, names in ((README, README_BLOCKS), (DOCS, DOCS_BLOCKS)):
        path = os.path.join(args.root, path)
        with open(path) as f:
            text = f.read()
        wanted = {n: blocks[n] for n in names}
        differ = stale_blocks(text, wanted)
        stale += [f"{path}: {n}" for n in differ]
        if differ and not args.check:
            rendered = replace_blocks(text, wanted)  # raises before the file is opened
            with open(path, "w") as f:
                f.write(rendered)
    if args.check and stale:
        print("Blocks that differ from the results file:\n  " + "\n  ".join(stale),
              file=sys.stderr)
        return 1
    print(("Up to date." if not stale else "Rendered: " + ", ".join(stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
