"""A SavedModel with GhostBatchNormalization served in a fresh process without tfgap."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import keras

from tfgap import GhostBatchNormalization

SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    assert "tfgap" not in sys.modules, "tfgap must not be needed to serve"
    serve = model.signatures["serving_default"]
    out = {}
    for batch in (1, 7):
        x = np.load(sys.argv[2])[:batch]
        result = serve(tf.constant(x))
        out[batch] = next(iter(result.values())).numpy().tolist()
    print(json.dumps(out))
""")


def test_export_serves_any_batch_without_tfgap(tmp_path):
    rng = np.random.default_rng(0)
    model = keras.Sequential([
        keras.Input((5, 5, 3)),
        keras.layers.Conv2D(4, 3),
        GhostBatchNormalization(virtual_batch_size=4, momentum=0.5),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    # Train the moving statistics away from their initial values.
    for _ in range(3):
        model(rng.normal(2.0, 3.0, size=(10, 5, 5, 3)).astype("float32"), training=True)
    x = rng.normal(size=(7, 5, 5, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    model.export(str(tmp_path / "saved"))

    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(tmp_path / "saved"), str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for batch in (1, 7):  # 7 is not divisible by the ghost size 4
        np.testing.assert_allclose(np.asarray(served[str(batch)]),
                                   model(x[:batch], training=False), rtol=1e-5, atol=1e-5)
