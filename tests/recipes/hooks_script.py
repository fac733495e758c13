"""Test helper (not a test): run a recipe's config through `train` with hooks.

    python tests/recipes/hooks_script.py RECIPE [--kill_at=N] [--sigterm_at=N] [--sigint_at=N]
        [--sleep_at=N] [--sleep_seconds=S] [--dump_weights=PATH] -- RECIPE FLAGS...

--kill_at: SIGKILL this process after step N (a hard crash, nothing flushed).
--sigterm_at: send SIGTERM to this process after step N (a preemption notice).
--sigint_at: send SIGINT (Ctrl-C) to this process after step N.
--sleep_at: print SLEEPING and sleep --sleep_seconds (1.5) after step N (so a clock
  checkpoint falls due there, or another process can meet this one).
--dump_weights: save the final weights (np.savez) from every worker.
--dump_logs: save every step's `step`, `learning_rate` and (with --adaptive) `gain`,
  `progress` and `batch_size` as JSON, from every worker.
--step_times: with --adaptive=batch, the seconds per step the batch controller records at
  each batch, `B:S,B:S,...` (`train(batch_step_time=)`: pinned, so decisions repeat).
Exit status: 0 done, 42 preempted, 130 interrupted.
"""

import json
import os
import signal
import sys
import time

import keras
import numpy as np

from tfgap.recipes import recipe_flags
from tfgap.training import Interrupted, Preempted, train


class Hooks(keras.callbacks.Callback):
    def __init__(self, kill_at=None, sigterm_at=None, sigint_at=None, sleep_at=None,
                 sleep_seconds=1.5, dump_weights=None, dump_logs=None):
        super().__init__()
        self.kill_at, self.sigterm_at, self.dump_weights = kill_at, sigterm_at, dump_weights
        self.sigint_at, self.sleep_at, self.sleep_seconds = sigint_at, sleep_at, sleep_seconds
        self.dump_logs, self.steps = dump_logs, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({k: logs[k] for k in ("step", "learning_rate", "gain", "progress",
                                                "batch_size") if k in logs})
        if logs["step"] == self.sleep_at:
            print("SLEEPING", flush=True)
            time.sleep(self.sleep_seconds)
        if logs["step"] == self.sigint_at:
            os.kill(os.getpid(), signal.SIGINT)
        if logs["step"] == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if logs["step"] == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_end(self, logs=None):
        weights = self.model.get_weights()
        if self.dump_weights:
            np.savez(self.dump_weights, *weights)
        if self.dump_logs:
            with open(self.dump_logs, "w") as f:
                json.dump(self.steps, f)


def pinned_times(text):
    """`B:S,B:S,...` as `train`'s `batch_step_time`: the seconds per step at each batch."""
    table = {int(b): float(t) for b, t in (pair.split(":") for pair in text.split(","))}
    return lambda batch, seconds: table[batch]


def main(argv):
    split = argv.index("--")
    options = dict(a[2:].split("=", 1) for a in argv[2:split])
    recipe, flags = argv[1], argv[split + 1:]
    config = recipe_flags.parse([recipe] + flags, recipe)
    hooks = Hooks(
        kill_at=int(options["kill_at"]) if "kill_at" in options else None,
        sigterm_at=int(options["sigterm_at"]) if "sigterm_at" in options else None,
        sigint_at=int(options["sigint_at"]) if "sigint_at" in options else None,
        sleep_at=int(options["sleep_at"]) if "sleep_at" in options else None,
        sleep_seconds=float(options.get("sleep_seconds", 1.5)),
        dump_weights=options.get("dump_weights"),
        dump_logs=options.get("dump_logs"),
    )
    step_time = pinned_times(options["step_times"]) if "step_times" in options else None
    try:
        result = train(config, callbacks=[hooks], batch_step_time=step_time)
    except Interrupted as e:
        print(f"INTERRUPTED: {e}", flush=True)
        return 130
    except Preempted as e:
        print(f"PREEMPTED: {e}", flush=True)
        return 42
    print(f"DONE step={result['global_step']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
