"""The shared front door (`tfgap.recipes.cli`): --help, one usage line, quiet logs, and the
artifact lines every command ends with."""

import io
import os
import re
import subprocess
import sys

import pytest
from absl import flags
from absl import logging as absl_logging

from tfgap.recipes import cli, study, tune
from tfgap.recipes import recipe_flags
from tfgap.training.config import GROUPS, settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def keep_log_levels():
    """`execute` sets absl's and TensorFlow's log levels; give this process its own back."""
    import tensorflow as tf

    absl_level, tf_level = absl_logging.get_verbosity(), tf.get_logger().level
    env = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    yield
    absl_logging.set_verbosity(absl_level)
    tf.get_logger().setLevel(tf_level)
    if env is None:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = env


def execute(define, run, argv, prog="prog"):
    out, err = io.StringIO(), io.StringIO()
    status = cli.execute(prog, define=define, run=run, doc="The doc.\n\nMore doc.",
                         argv=["prog", *argv], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def recipe_define(fv, argv):
    recipe_flags.define_flags(recipe_flags.recipe_defaults("mnist"), fv)


def never_run(fv):
    raise AssertionError("run must not be called")


def help_sections(text):
    """{group: [(flag line, help lines)]} of a --help text."""
    sections, group = {}, None
    for line in text.splitlines():
        if re.fullmatch(r"[a-z]+:", line):
            group = line[:-1]
            sections[group] = []
        elif group and line.startswith("  --"):
            sections[group].append(line.strip())
    return sections


def test_help_lists_the_recipes_own_flags_by_group_with_defaults_and_values():
    status, out, err = execute(recipe_define, never_run, ["--help"])
    assert status == 0 and err == ""
    assert out.startswith("The doc.\n\nMore doc.\n")
    sections = help_sections(out)
    assert list(sections) == list(GROUPS)
    listed = {re.match(r"--(?:\[no\])?(\w+)", line).group(1): (group, line)
              for group, lines in sections.items() for line in lines}
    expected = {n for n, s in settings().items() if s.cli} | {"export", "verbosity"}
    assert set(listed) == expected
    for name, declared in settings().items():
        if declared.cli:
            assert listed[name][0] == declared.group, name
    assert listed["moving_update"][1] == (
        "--moving_update (default: sequential; one of: sequential, averaged, full_batch)")
    assert listed["batch_size"][1] == "--batch_size (default: 128; an integer >= 1)"
    assert listed["lr_boundaries"][1] == (
        "--lr_boundaries (default: 10,20,30; comma-separated numbers, each > 0)")
    assert listed["momentum"][1] == "--momentum (default: 0.9; a number in [0, 1))"
    assert listed["mock_data"][1] == "--[no]mock_data (default: false)"
    assert listed["model_dir"][1].startswith("--model_dir (default: runs/mnist/<run name>;")
    assert listed["validation_examples"][1] == (
        "--validation_examples (default: unset; an integer >= 0; empty = unset)")
    # Every short form of help, anywhere on the line, even after a bad flag.
    for form in ("-h", "--helpshort", "--helpfull"):
        assert execute(recipe_define, never_run, ["--batch_size=x", form])[:2] == (0, out)


def test_tune_and_study_help_list_their_own_group_first():
    status, out, _ = execute(tune.define, never_run, ["--recipe=cifar10", "--help"])
    sections = help_sections(out)
    assert status == 0 and list(sections)[0] == "search"
    assert any(line.startswith("--max_trials (default: 10") for line in sections["search"])
    assert any(line.startswith("--model (default: resnet44;") for line in sections["model"])
    status, out, _ = execute(study.define, never_run, ["--help"])
    sections = help_sections(out)
    assert status == 0 and list(sections)[0] == "study"
    assert "--strategy (default: one_device; one of: auto, one_device, mirrored)" in \
        sections["distribution"]
    assert any(line.startswith("--momentum (default: unset;") for line in sections["regime"])


@pytest.mark.parametrize("argv, fragment", [
    (["--batch_size=abc"], "--batch_size to be an integer. Received: --batch_size=abc"),
    (["--batch_size=64", "--ghost_batch_size=48"], "Received: --ghost_batch_size=48"),
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["positional"], "take no positional arguments. Received: ['positional']"),
    (["epochs=1"], "Expected every flag to start with '--', in a flagfile too. Received: "
                   "'epochs=1' (write --epochs=1)"),
    (["--seed=4294967296"], "Expected --seed in [0, 4294967295]. Received: --seed=4294967296"),
    (["--export_dir=/tmp/x", "--noexport"], "Expected no --export_dir with --noexport"),
    (["--strategy=tpu"], "Expected --tpu (a TPU name"),
])
def test_every_bad_flag_is_one_usage_line(argv, fragment):
    def run(fv):
        recipe_flags.config_from_flags(fv, recipe_flags.recipe_defaults("mnist"))
        raise AssertionError("a bad flag must stop before running")

    status, out, err = execute(recipe_define, run, argv, prog="python -m tfgap.recipes.mnist")
    assert status == cli.EXIT_USAGE and out == ""
    assert err.count("\n") == 1 and err.startswith("python -m tfgap.recipes.mnist: usage error: ")
    assert fragment in err and err.endswith(" (see --help)\n"), err


def test_tune_usage_errors():
    status, _, err = execute(tune.define, tune.run, ["--max_trials=1"])
    assert status == 2 and "Expected --recipe=NAME" in err and err.count("\n") == 1
    status, _, err = execute(tune.define, tune.run, ["--recipe=mnist", "--lr_multiplier_min=2",
                                                     "--lr_multiplier_max=1"])
    assert status == 2 and "--lr_multiplier_min <= --lr_multiplier_max" in err


def test_failures_and_artifacts(tmp_path):
    def define(fv, argv):
        flags.DEFINE_string("what", "ok", "What happens.", flag_values=fv)

    def run(fv):
        if fv.what == "fail":
            raise cli.CommandFailed("the data\nis gone")
        (tmp_path / "a.json").write_text("{}")
        return [("results", str(tmp_path / "a.json")), ("figure", str(tmp_path / "b.png")),
                ("nothing", None)]

    assert execute(define, run, ["--what=fail"]) == (1, "", "prog: the data is gone\n")
    status, out, err = execute(define, run, [])
    assert (status, err) == (0, "")
    assert out.splitlines() == [f"Wrote results: {tmp_path / 'a.json'}",
                                f"Wrote figure:  {tmp_path / 'b.png'}"]


def test_missing_data_is_one_line_naming_flags(tmp_path):
    # The library's message names arguments (download=True); the command names flags.
    def run(fv):
        config = recipe_flags.config_from_flags(fv, recipe_flags.recipe_defaults("mnist"))
        return recipe_flags.train_and_report(config)

    data_dir = tmp_path / "nowhere"
    status, out, err = execute(recipe_define, run, [
        f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}", "--noexport"],
        prog="python -m tfgap.recipes.mnist")
    assert (status, out) == (cli.EXIT_FAILED, "") and err.count("\n") == 1
    assert f"tfds build mnist --data_dir={data_dir}" in err
    assert "re-run with --download to download" in err and "download=True" not in err


def test_flag_style_names_booleans_as_flags():
    names = ["mock_data", "synthetic", "download"]
    assert cli.flag_style("Expected at most one of `mock_data` and `synthetic`. Received: "
                          "mock_data=True, synthetic=True", names) == (
        "Expected at most one of --mock_data and --synthetic. Received: --mock_data, "
        "--synthetic")
    assert cli.flag_style("Set download=False; --download=True is the same.", names) == (
        "Set --nodownload; --download is the same.")
    assert cli.flag_style("mock_data=Truer", names) == "--mock_data=Truer"


def test_verbosity_from_the_command_line_and_the_environment(monkeypatch):
    monkeypatch.delenv(cli.VERBOSITY_ENV, raising=False)
    assert cli.verbosity_from_argv(["p", "--batch_size=2"]) is None
    assert cli.verbosity_from_argv(["p", "--verbosity=0"]) == 0
    assert cli.verbosity_from_argv(["p", "--verbosity", "-1"]) == -1
    assert cli.verbosity_from_argv(["p", "--", "--verbosity=0"]) is None
    monkeypatch.setenv(cli.VERBOSITY_ENV, "-2")
    assert cli.verbosity_from_argv(["p"]) == -2
    assert cli.verbosity_from_argv(["p", "--verbosity=1"]) == 1


QUIET_SCRIPT = """
import sys
# As under `python -m tfgap.recipes.<name> [--verbosity=N]`: while the package is imported
# for the command, sys.argv[0] is "-m".
level = sys.argv[1]
sys.argv = ["-m"] + ([] if level == "quiet" else [f"--verbosity={level}"])
from tfgap.recipes import cli
cli.quiet_logs(None if level == "quiet" else int(level))
import tensorflow as tf
from absl import logging
tf.config.list_physical_devices()
ds = tf.data.Dataset.from_generator(lambda: iter([1, 2]),
                                    output_signature=tf.TensorSpec((), tf.int32))
assert list(ds.as_numpy_iterator()) == [1, 2]
logging.warning("an absl warning")
logging.error("an absl error")
print("DONE")
"""


def run_quiet_script(level):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", cli.VERBOSITY_ENV)}
    return subprocess.run([sys.executable, "-c", QUIET_SCRIPT, level], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_quiet_logs_before_tensorflow_leaves_only_errors_of_ours():
    quiet = run_quiet_script("quiet")
    assert quiet.returncode == 0 and "DONE" in quiet.stdout, quiet.stderr[-2000:]
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == [
        line for line in quiet.stderr.splitlines() if "an absl error" in line]
    loud = run_quiet_script("0")
    assert loud.returncode == 0 and "DONE" in loud.stdout, loud.stderr[-2000:]
    assert "an absl warning" in loud.stderr and len(loud.stderr.splitlines()) > 2


@pytest.mark.slow
def test_a_recipe_run_is_quiet_and_ends_with_its_artifacts(tmp_path):
    model_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", cli.VERBOSITY_ENV)}
    proc = subprocess.run(
        [sys.executable, "-m", "tfgap.recipes.mnist", "--mock_data", "--mock_examples=40",
         "--batch_size=16", "--epochs=1", "--model=mlp", "--model_options=mlp_width=8",
         "--verbose=0", "--nopreemption", "--strategy=one_device", f"--model_dir={model_dir}",
         f"--export_dir={tmp_path / 'export'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Nothing on stderr: tensorflow-datasets' and absl's Python warnings are gone, and so are
    # TensorFlow's import-time C++ lines (the package quiets them before Keras imports it).
    assert proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Done: ") and "images/s" in lines[0]
    wrote = dict(re.fullmatch(r"Wrote (.+?): +(.+)", line).groups() for line in lines[1:])
    assert wrote == {
        "result": str(model_dir / "result.json"), "history": str(model_dir / "history.json"),
        "config": str(model_dir / "config.json"), "checkpoints": str(model_dir / "checkpoints"),
        "TensorBoard logs": str(model_dir / "logs"), "SavedModel": str(tmp_path / "export")}
    assert sorted(os.listdir(model_dir)) == sorted(
        os.path.basename(p) for w, p in wrote.items() if w != "SavedModel")


def test_a_flagfile_line_without_dashes_is_named(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--epochs=1\nbatch_size=8\n")
    status, out, err = execute(recipe_define, never_run, [f"--flagfile={flagfile}"])
    assert (status, out) == (cli.EXIT_USAGE, "") and err.count("\n") == 1
    assert "Received: 'batch_size=8' (write --batch_size=8)" in err


def test_run_problems_are_one_line_each(tmp_path):
    def run(fv):
        config = recipe_flags.config_from_flags(fv, recipe_flags.recipe_defaults("mnist"))
        return recipe_flags.train_and_report(config)

    common = ["--mock_data", "--mock_examples=32", "--noexport", "--model=mlp",
              "--model_options=mlp_width=8,mlp_depth=1", "--verbose=0"]
    status, _, err = execute(recipe_define, run, [*common, "--batch_size=100000000",
                                                  f"--model_dir={tmp_path / 'run'}"])
    assert status == cli.EXIT_USAGE and err.count("\n") == 1
    assert "Expected --batch_size at most the 32 training examples" in err and "-9999" not in err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    status, _, err = execute(recipe_define, run, [*common, f"--model_dir={a_file}"])
    assert status == cli.EXIT_FAILED and err.count("\n") == 1 and "which is a file" in err
    assert a_file.read_text() == "mine"


def test_ctrl_c_before_training_is_one_line():
    def run(fv):
        raise KeyboardInterrupt

    status, out, err = execute(recipe_define, run, [])
    assert (status, out) == (cli.EXIT_INTERRUPTED, "")
    assert err == "prog: Interrupted (Ctrl-C) before training started; nothing was saved.\n"
