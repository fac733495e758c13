"""The TensorFlow-only parts say so at import under another Keras backend (JAX here; it is a
test dependency, `.[test]`)."""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUARDED = ("tfgap.training", "tfgap.recipes", "tfgap.tuning", "tfgap.sam")

SCRIPT = textwrap.dedent("""
    import importlib, json, sys
    out = {}
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
            out[name] = "imported"
        except ImportError as error:
            out[name] = f"ImportError: {error}"
    import keras
    out["backend"] = keras.backend.backend()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(out))
""")


def test_importing_the_trainer_under_jax_raises_one_clear_import_error():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *GUARDED], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    for name in GUARDED:
        assert out[name].startswith(f"ImportError: {name} needs the TensorFlow backend of "
                                    "Keras"), (name, out[name])
        assert "KERAS_BACKEND is 'jax'" in out[name]
    # The guard comes before any TensorFlow import.
    assert out["tensorflow_imported"] is False
