"""`export_saved_model` never removes what it did not write: real files, real SavedModels."""

import ctypes
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import tensorflow as tf

import tfgap
from tfgap.training import export
from tfgap.training.config import ConfigError
from tfgap.training.export import ExportPathError, check_export_path, export_saved_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = np.random.default_rng(0).normal(size=(4, 40)).astype("float32")


def build(seed):
    spec = tfgap.data.get_spec("mnist1d")
    return tfgap.models.build_model("mlp", num_classes=10, input_shape=spec.input_shape,
                                    mlp_width=8, mlp_depth=1, seed=seed)


@pytest.fixture(scope="module")
def models():
    """Two tiny MNIST-1D models with different weights: the old and the new export."""
    return build(1), build(2)


@pytest.fixture(scope="module")
def earlier(models, tmp_path_factory):
    """A real tfgap export of the old model, copied by the tests that replace one."""
    return export_saved_model(models[0], tmp_path_factory.mktemp("earlier") / "exp",
                              dataset="mnist1d", config={"run": "old"})


def copy_of(earlier, tmp_path):
    return shutil.copytree(earlier, tmp_path / "exp", symlinks=True)


def served(path):
    logits = tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.constant(IMAGES))["logits"]
    assert logits.shape == (4, 10)
    return logits.numpy()


def expected(model):
    return model(tfgap.data.preprocess_for_eval("mnist1d", IMAGES), training=False).numpy()


def snapshot(root):
    """{relative path: bytes or None for directories} of everything under `root`."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            is_file = os.path.isfile(path)
            out[os.path.relpath(path, root)] = open(path, "rb").read() if is_file else None
    return out


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_user_folder_and_regular_file_are_refused_untouched(models, tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "thesis.txt").write_bytes(b"four years of work\n")
    (tmp_path / "model.bin").write_bytes(b"\x00\x01weights")
    os.symlink(tmp_path / "model.bin", tmp_path / "link")
    before = snapshot(tmp_path)
    with pytest.raises(ExportPathError, match=r"is a directory but no tfgap export.*"
                       r"nothing was touched"):
        export_saved_model(models[1], folder, dataset="mnist1d")
    for name in ("model.bin", "link"):
        with pytest.raises(ExportPathError, match="is a file or a symlink"):
            export_saved_model(models[1], tmp_path / name, dataset="mnist1d")
    assert snapshot(tmp_path) == before  # byte-identical, and no hidden temp dirs left
    assert isinstance(ExportPathError("x"), ConfigError)


@pytest.mark.parametrize("where", ["equal", "inside", "contains", "equal_not_yet_created"])
def test_model_dir_is_protected(models, tmp_path, where):
    model_dir = tmp_path / "runs" / "run1"
    if where != "equal_not_yet_created":
        (model_dir / "checkpoints").mkdir(parents=True)
        (model_dir / "checkpoints" / "ckpt-1.index").write_bytes(b"checkpoint")
        (model_dir / "history.json").write_text('{"history": []}')
    others = {"inside": model_dir / "export", "contains": tmp_path / "runs"}
    export_dir = others.get(where, model_dir)
    before = snapshot(tmp_path)
    with pytest.raises(ExportPathError, match=r"protected path .*run1.*nothing was touched"):
        check_export_path(export_dir, protected=[str(model_dir)])
    with pytest.raises(ExportPathError, match="protected path"):
        export_saved_model(models[1], export_dir, dataset="mnist1d", protected=str(model_dir))
    assert snapshot(tmp_path) == before
    check_export_path(tmp_path / "exports" / "run1", protected=[str(model_dir)])  # a sibling: fine


def test_export_holding_a_user_file_is_refused(models, earlier, tmp_path):
    path = copy_of(earlier, tmp_path)
    (path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ExportPathError, match=r"foreign entries \['notes.txt'\]"):
        export_saved_model(models[1], path, dataset="mnist1d")
    assert snapshot(tmp_path) == before


def test_replacing_an_earlier_export_swaps_it_atomically(models, earlier, tmp_path, monkeypatch):
    path = copy_of(earlier, tmp_path)
    np.testing.assert_allclose(served(path), expected(models[0]), rtol=1e-5, atol=1e-5)
    exchanges = []
    real_exchange = export._exchange
    monkeypatch.setattr(export, "_exchange", lambda a, b: exchanges.append(real_exchange(a, b))
                        or exchanges[-1])
    assert export_saved_model(models[1], path, dataset="mnist1d",
                              config={"run": "new"}) == str(path)
    assert exchanges == [True]  # renameat2(RENAME_EXCHANGE) on this Linux machine
    np.testing.assert_allclose(served(path), expected(models[1]), rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected(models[0]), expected(models[1]))
    assert json.loads((path / "tfgap_config.json").read_text()) == {"run": "new"}
    assert sorted(os.listdir(tmp_path)) == ["exp"]  # the old model is gone, no temp dirs


def test_empty_directory_is_used(models, tmp_path):
    (tmp_path / "exp").mkdir()
    export_saved_model(models[1], tmp_path / "exp", dataset="mnist1d")
    np.testing.assert_allclose(served(tmp_path / "exp"), expected(models[1]), rtol=1e-5, atol=1e-5)
    assert json.loads((tmp_path / "exp" / "tfgap_config.json").read_text()) is None
    assert sorted(os.listdir(tmp_path)) == ["exp"]


def test_failed_export_leaves_the_earlier_one_untouched(models, earlier, tmp_path):
    path = copy_of(earlier, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(TypeError, match="not JSON serializable"):
        export_saved_model(models[1], path, dataset="mnist1d", config={"bad": object()})
    assert snapshot(tmp_path) == before


def test_exchange_through_libc_and_through_the_raw_system_call(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / name).write_text(name)
    assert export._exchange(str(tmp_path / "a"), str(tmp_path / "b")) is True
    assert os.listdir(tmp_path / "a") == ["b"] and os.listdir(tmp_path / "b") == ["a"]
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = export._renameat2(types.SimpleNamespace(syscall=libc.syscall), platform.machine())
    assert syscall(-100, os.fsencode(tmp_path / "a"), -100, os.fsencode(tmp_path / "b"), 2) == 0
    assert os.listdir(tmp_path / "a") == ["a"] and os.listdir(tmp_path / "b") == ["b"]
    assert export._renameat2(types.SimpleNamespace(), "riscv64") is None
    with pytest.raises(FileNotFoundError):
        export._exchange(str(tmp_path / "a"), str(tmp_path / "missing"))


def test_fallback_interrupted_between_renames_is_restored(models, earlier, tmp_path, monkeypatch):
    path = copy_of(earlier, tmp_path)
    monkeypatch.setattr(export, "_exchange", lambda a, b: False)  # e.g. not Linux
    real_rename = os.rename

    def failing_rename(failing):
        def rename(src, dst):
            if os.path.abspath(dst) == str(path) and failing in os.path.basename(src):
                raise OSError(f"simulated crash renaming {os.path.basename(src)}")
            real_rename(src, dst)
        return rename

    with monkeypatch.context() as patch:  # tmp -> target fails: rolled back at once
        patch.setattr(os, "rename", failing_rename(".exp.tmp-"))
        with pytest.raises(OSError, match=r"simulated crash renaming \.exp\.tmp-"):
            export_saved_model(models[1], path, dataset="mnist1d")
    assert sorted(os.listdir(tmp_path)) == ["exp"]
    with monkeypatch.context() as patch:  # the rollback fails too: a crash, in effect
        patch.setattr(os, "rename", failing_rename(".exp."))
        with pytest.raises(OSError, match=r"simulated crash renaming \.exp\.tmp-"):
            export_saved_model(models[1], path, dataset="mnist1d")
    assert not os.path.exists(path)
    (old,) = os.listdir(tmp_path)
    assert old.startswith(f".exp.old-{os.getpid()}-")
    check_export_path(path)  # moves the earlier export back
    assert sorted(os.listdir(tmp_path)) == ["exp"]
    np.testing.assert_allclose(served(path), expected(models[0]), rtol=1e-5, atol=1e-5)
    export_saved_model(models[1], path, dataset="mnist1d")  # the fallback, uninterrupted
    assert sorted(os.listdir(tmp_path)) == ["exp"]
    np.testing.assert_allclose(served(path), expected(models[1]), rtol=1e-5, atol=1e-5)


def test_leftovers_of_dead_exports_are_removed_only_those(models, earlier, tmp_path):
    copy_of(earlier, tmp_path)
    dead = dead_pid()
    removed = [f".exp.tmp-{dead}-abcd1234", f".exp.old-{dead}-0123cdef"]
    kept = [f".exp.tmp-{os.getpid()}-abcd1234", ".exp.tmpfoo", f".exp.tmp-{dead}-abcd12345",
            f".other.tmp-{dead}-abcd1234", f"exp.tmp-{dead}-abcd1234"]
    for name in removed + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"x")
    (tmp_path / f".exp.old-{dead}-99999999").write_text("a file, not an export's directory")
    kept.append(f".exp.old-{dead}-99999999")
    export_saved_model(models[1], tmp_path / "exp", dataset="mnist1d")
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["exp"])


@pytest.mark.slow
def test_export_killed_between_renames_is_restored_by_the_next_one(models, earlier, tmp_path):
    path = copy_of(earlier, tmp_path)
    script = textwrap.dedent(f"""
        import os, signal
        import tfgap
        from tfgap.training import export
        spec = tfgap.data.get_spec("mnist1d")
        model = tfgap.models.build_model("mlp", num_classes=10, input_shape=spec.input_shape,
                                         mlp_width=8, mlp_depth=1, seed=3)
        export._exchange = lambda a, b: False
        rename = os.rename
        def rename_or_die(src, dst):
            if dst == {str(path)!r}:
                os.kill(os.getpid(), signal.SIGKILL)
            rename(src, dst)
        os.rename = rename_or_die
        export.export_saved_model(model, {str(path)!r}, dataset="mnist1d")
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    process = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    assert not os.path.exists(path)
    assert sorted(name.split("-")[0] for name in os.listdir(tmp_path)) == [".exp.old", ".exp.tmp"]
    check_export_path(path)  # the writer is dead: its old directory goes back in place
    np.testing.assert_allclose(served(path), expected(models[0]), rtol=1e-5, atol=1e-5)
    export_saved_model(models[1], path, dataset="mnist1d")  # removes the dead one's tmp dir
    assert sorted(os.listdir(tmp_path)) == ["exp"]
    np.testing.assert_allclose(served(path), expected(models[1]), rtol=1e-5, atol=1e-5)
