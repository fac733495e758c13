"""Quiet TensorFlow logs for tfgap's commands, set before TensorFlow is imported.

TensorFlow reads its C++ log level (`TF_CPP_MIN_LOG_LEVEL`) once, when it is
imported, and prints its import-time lines (oneDNN, CUDA stubs, CPU features)
then. A command (`python -m tfgap.recipes.<name>`) imports the `tfgap`
package, and TensorFlow with it, before its own code runs, so `tfgap/__init__`
calls `quiet_tensorflow` first when it is imported on the way to a command.
This module imports nothing from tfgap, Keras or TensorFlow at import time.
"""

import contextlib
import os
import sys

VERBOSITY_ENV = "TFGAP_VERBOSITY"


def env_verbosity():
    """`$TFGAP_VERBOSITY` as an absl level in [-3, 1], or `None` (unset or not a number)."""
    text = os.environ.get(VERBOSITY_ENV, "").strip()
    try:
        return max(-3, min(1, int(text))) if text else None
    except ValueError:
        return None


def verbosity_from_argv(argv):
    """`--verbosity` from the command line (or `$TFGAP_VERBOSITY`), before any flag is defined.

    Example:

    >>> verbosity_from_argv(["prog", "--epochs=2", "--verbosity=-1"])
    -1
    """
    found = env_verbosity()
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--":
            break
        text = None
        for prefix in ("--verbosity=", "-verbosity="):
            if arg.startswith(prefix):
                text = arg[len(prefix):]
        if arg in ("--verbosity", "-verbosity") and i + 1 < len(args):
            text = args[i + 1]
        if text is not None:
            try:
                found = max(-3, min(1, int(text)))
            except ValueError:
                pass  # the flag parser reports it
    return found


def quiet_tensorflow(verbosity=None):
    """Sets TensorFlow's C++ log level from `verbosity`, then imports TensorFlow.

    `None` = quiet: `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it, and the
    import's own lines are kept off stderr. Otherwise the level follows the
    absl level (`0` info and more, `-1` warnings, `-2` errors, `-3` fatal).
    Does nothing to the level when TensorFlow is already imported.
    """
    if verbosity is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(max(0, min(3, -verbosity)))
    if "tensorflow" not in sys.modules:
        with _stderr_silenced(verbosity is None and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"):
            import tensorflow  # noqa: F401, PLC0415


def quiet_for_command(argv):
    """Under `python -m tfgap....` (while the package is imported for it): `quiet_tensorflow`.

    While Python imports the packages of a `-m` module, `sys.argv[0]` is still
    `"-m"`; any other import of tfgap (a script, a notebook, pytest) is left
    alone. Only under the TensorFlow backend (the commands need it).
    """
    if argv[:1] != ["-m"] or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    quiet_tensorflow(verbosity_from_argv(argv))


@contextlib.contextmanager
def _stderr_silenced(active):
    """Sends file descriptor 2 to /dev/null inside the block (C++ writes included)."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
