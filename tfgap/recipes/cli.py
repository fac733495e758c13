"""The front door every tfgap command shares: quiet logs, `--help`, one-line errors, artifacts.

A command (`python -m tfgap.recipes.<name>`) is two functions handed to `main`:

- `define(flag_values, argv)` defines its flags on a fresh `absl.flags.FlagValues`
  (`argv` lets a command read an option early, as `tune` reads `--recipe`);
  `define_setting_flags` defines `TrainConfig` settings from their declarations,
  and `set_group` files other flags under a help group.
- `run(flag_values)` does the work and returns the artifacts it wrote, as
  `(what, path)` pairs; it raises `UsageError` (or `ConfigError`) for a bad
  flag, `CommandFailed` for anything else that stops it.

`main` then gives every command the same behaviour:

- TensorFlow's, tensorflow-datasets' and absl's log noise is silenced;
  `--verbosity=N` (absl levels: -1 warnings, 0 info, 1 debug; on the command
  line) or the environment variable `TFGAP_VERBOSITY=N` brings it back, and a
  `TF_CPP_MIN_LOG_LEVEL` you set yourself is left alone.
- `--help` (also `-h`, `--helpshort`, `--helpfull`) prints the command's own
  flags, grouped, each with its default and allowed values, and exits 0.
- Errors are ONE line on stderr, `<prog>: ...`, never a traceback: a bad flag
  or combination exits 2 (`usage error: ... (see --help)`, config messages
  translated to flag names); missing data, a non-finite loss or
  `CommandFailed`, a run directory in use or unusable, a damaged file exit 1;
  a preemption (SIGTERM) exits 42 and Ctrl-C 130, both after saving a
  checkpoint when training (re-run the same command to resume).
- The last lines on stdout name every artifact the command wrote.

Example (an `advise` command):

    from tfgap.recipes import cli

    def define(fv, argv):
        flags.DEFINE_integer("max_batch_size", 8192, "Largest batch considered.",
                             lower_bound=1, flag_values=fv)
        cli.set_group(fv, "advice", "max_batch_size")

    def run(fv):
        path = write_advice(fv.max_batch_size)
        return [("advice", path)]

    if __name__ == "__main__":
        cli.main("python -m tfgap.recipes.advise", doc=__doc__, define=define, run=run)
"""

import os
import re
import sys
import textwrap

from absl import flags

from tfgap import _logs
from tfgap._logs import VERBOSITY_ENV, verbosity_from_argv  # noqa: F401 (re-exported)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 42
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C

HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull")
_GROUP_ATTR = "tfgap_group"
_DEFAULT_TEXT_ATTR = "tfgap_default_text"


class UsageError(ValueError):
    """A flag value or combination that cannot run (one line, exit status 2)."""


class CommandFailed(RuntimeError):
    """A command that cannot go on for a reason other than its flags (one line, exit status 1)."""


# -- defining flags -----------------------------------------------------------------------


class SettingParser(flags.ArgumentParser):
    """absl parser of one `TrainConfig` setting: its own `parse` and `check` (see config.py)."""

    def __init__(self, declared):
        self.setting = declared
        self.syntactic_help = declared.describe()

    def parse(self, argument):
        from tfgap.training import ConfigError  # noqa: PLC0415

        try:
            return self.setting.parse(argument)
        except ConfigError as e:
            raise ValueError(str(e)) from None

    def flag_type(self):
        return self.setting.kind


class SettingSerializer(flags.ArgumentSerializer):
    def __init__(self, declared):
        self.setting = declared

    def serialize(self, value):
        return self.setting.format(value)


_OWN = object()  # "the setting's own default"


def define_setting_flag(flag_values, declared, *, default=_OWN,
                        help=None, choices=None, optional=None):  # noqa: A002
    """Defines the flag of one `TrainConfig` setting (a `config.Setting`) on `flag_values`.

    Args:
        flag_values: an `absl.flags.FlagValues`.
        declared: the `Setting` (`tfgap.training.config.settings()[name]`).
        default: the flag's default (default: the setting's own; `None`: unset,
            with `optional=True`).
        help: replaces the setting's help text (for a command that uses the
            name with a narrower meaning).
        choices: restricts the setting's allowed values.
        optional: `True` lets the flag be unset (empty) where the command
            computes a default (e.g. `--model_dir`).
    """
    import dataclasses  # noqa: PLC0415

    changes = {"choices": None if choices is None else tuple(choices), "help": help,
               "optional": optional}
    changes = {key: value for key, value in changes.items() if value is not None}
    declared = dataclasses.replace(declared, **changes)
    value = declared.default if default is _OWN else default
    if declared.kind == "bool":
        flags.DEFINE_boolean(declared.name, value, declared.help, flag_values=flag_values)
    else:
        flags.DEFINE(SettingParser(declared), declared.name, value, declared.help,
                     serializer=SettingSerializer(declared), flag_values=flag_values)
    set_group(flag_values, declared.group, declared.name)


def define_setting_flags(flag_values, defaults=None, *, names=None, unset=()):
    """Defines the flags of the command-line `TrainConfig` settings, from their declarations.

    Args:
        flag_values: an `absl.flags.FlagValues`.
        defaults: `{name: value}` overriding the settings' own defaults.
        names: only these settings (default: every one declared `cli=True`).
        unset: settings whose flag may stay unset (the command computes them).
    """
    from tfgap.training.config import settings  # noqa: PLC0415

    defaults = dict(defaults or {})
    for name, declared in settings().items():
        if (names is None and not declared.cli) or (names is not None and name not in names):
            continue
        define_setting_flag(flag_values, declared, default=defaults.get(name, _OWN),
                            optional=True if name in unset else None)


def set_group(flag_values, group, *names):
    """Lists the flags `names` under `group` in `--help`."""
    for name in names:
        setattr(flag_values[name], _GROUP_ATTR, group)


def set_default_text(flag_values, name, text):
    """Shows `text` as the default of flag `name` in `--help` (a default computed later)."""
    setattr(flag_values[name], _DEFAULT_TEXT_ATTR, text)


def define_verbosity(flag_values):
    """`--verbosity`: the log level of TensorFlow, tensorflow-datasets and absl."""
    flags.DEFINE_integer(
        "verbosity", _logs.env_verbosity(), "Log messages of TensorFlow, tensorflow-datasets and "
        "absl at this absl level or more severe: -3 fatal, -2 errors, -1 warnings, 0 info, "
        f"1 debug (unset = quiet; also ${VERBOSITY_ENV}). Give it on the command line: "
        "TensorFlow reads it before the flagfiles.", lower_bound=-3, upper_bound=1,
        flag_values=flag_values)
    set_group(flag_values, "output", "verbosity")


# -- quiet logs ---------------------------------------------------------------------------


def quiet_logs(verbosity=None):
    """Silences TensorFlow's, tensorflow-datasets' and absl's logs below `verbosity`.

    `None` = quiet: TensorFlow's C++ logs are off (see
    `tfgap._logs.quiet_tensorflow`) and absl's Python logs show errors only.

    Args:
        verbosity: an absl level (-3 fatal ... 0 info, 1 debug), or `None`.
    """
    from absl import logging  # noqa: PLC0415
    from absl.logging import converter  # noqa: PLC0415

    _logs.quiet_tensorflow(verbosity)
    level = logging.ERROR if verbosity is None else verbosity
    logging.set_verbosity(level)
    import tensorflow as tf  # noqa: PLC0415

    tf.get_logger().setLevel(converter.absl_to_standard(level))


# -- help ---------------------------------------------------------------------------------


def help_text(prog, doc, flag_values, *, width=88):
    """The `--help` text: `doc`, the usage line, then every flag by group."""
    from tfgap.training.config import GROUPS  # noqa: PLC0415

    out = []
    if doc:
        out.append(textwrap.dedent(doc).strip())
        out.append("")
    out.append(f"Usage: {prog} [--flag=value ...] [--flagfile=FILE]")
    out.append("Flags given later win; a flagfile holds one --flag=value per line.")
    groups = {}
    for name, flag in sorted(_own_flags(flag_values).items()):
        groups.setdefault(getattr(flag, _GROUP_ATTR, "other"), []).append((name, flag))
    order = [g for g in groups if g not in GROUPS and g != "other"]
    order += [g for g in GROUPS if g in groups] + (["other"] if "other" in groups else [])
    for group in order:
        out.append("")
        out.append(f"{group}:")
        for name, flag in groups[group]:
            head = f"--[no]{name}" if flag.boolean else f"--{name}"
            details = [f"default: {_default_text(flag)}"]
            allowed = _allowed_text(flag)
            if allowed:
                details.append(allowed)
            out.append(f"  {head} ({'; '.join(details)})")
            text = re.sub(r"^<[^>]*>: ", "", flag.help)  # DEFINE_enum's prefix: listed above
            out.extend(textwrap.wrap(text, width=width, initial_indent=" " * 6,
                                     subsequent_indent=" " * 6, break_on_hyphens=False))
    return "\n".join(out) + "\n"


def _own_flags(flag_values):
    return {name: flag for name, flag in flag_values._flags().items() if name == flag.name}


def _default_text(flag):
    text = getattr(flag, _DEFAULT_TEXT_ATTR, None)
    if text is not None:
        return text
    if flag.default is None:
        return "unset"
    if isinstance(flag.parser, SettingParser):
        shown = flag.parser.setting.format(flag.default)
        return shown if shown != "" else "empty"
    if flag.boolean:
        return "true" if flag.default else "false"
    if isinstance(flag.default, (list, tuple)):
        return ",".join(map(str, flag.default)) or "empty"
    return str(flag.default)


def _allowed_text(flag):
    parser = flag.parser
    if isinstance(parser, SettingParser):
        return "" if parser.setting.kind == "bool" else parser.setting.describe()
    if flag.boolean:
        return ""
    values = getattr(parser, "enum_values", None)
    if values:
        return "one of: " + ", ".join(values)
    return getattr(parser, "syntactic_help", "") or ""


# -- errors -------------------------------------------------------------------------------


def flag_style(message, names):
    """Names the arguments in a library message as flags, on one line.

    Library errors name arguments as Python does; for each of `names`,
    `` `batch_size` `` becomes `--batch_size`, `batch_size=64` `--batch_size=64`,
    and a boolean `download=True` / `download=False` becomes `--download` /
    `--nodownload`. Whitespace is collapsed to one line.

    Example:

    >>> flag_style("Expected `batch_size` >= 1. Received: batch_size=0", ["batch_size"])
    'Expected --batch_size >= 1. Received: --batch_size=0'
    >>> flag_style("Re-run with download=True.", ["download"])
    'Re-run with --download.'
    """
    message = " ".join(str(message).split())
    for name in sorted(names, key=len, reverse=True):
        message = message.replace(f"`{name}`", f"--{name}")
        message = re.sub(rf"(?<![\w\-]){re.escape(name)}=", f"--{name}=", message)
        message = re.sub(rf"--{re.escape(name)}=(True|False)\b",
                         lambda m: f"--{'' if m.group(1) == 'True' else 'no'}{name}", message)
    # absl's "flag --x=v: <message naming --x>" says the flag twice.
    match = re.fullmatch(r"flag --(\w+)=.*?: (.*--\1\b.*)", message)
    return match.group(2) if match else message


def positional_message(arguments, names):
    """The one line for arguments that are not flags (`absl` leaves them positional).

    The usual cause is a flag written without its leading `--`, on the command
    line or as a flagfile line: that flag is named.

    Example:

    >>> positional_message(["epochs=1"], ["epochs"]).split("Received: ")[1]
    "'epochs=1' (write --epochs=1)"
    >>> positional_message(["run1"], ["epochs"]).split("Received: ")[1]
    "['run1']"
    """
    known = set(names)
    for argument in arguments:
        name = argument.split("=", 1)[0].lstrip("-")
        if name in known or (name.startswith("no") and name[2:] in known):
            return (f"Expected every flag to start with '--', in a flagfile too. Received: "
                    f"{argument!r} (write --{argument.lstrip('-')})")
    return ("Expected only flags (--name=value); tfgap commands take no positional arguments. "
            f"Received: {list(arguments)}")


def fail(prog, message, status=EXIT_FAILED, stream=None):
    """Writes `message` as one line on stderr (whitespace collapsed); returns `status`."""
    stream = sys.stderr if stream is None else stream
    stream.write(f"{prog}: {' '.join(str(message).split())}\n")
    stream.flush()
    return status


def usage(prog, message, names=(), stream=None):
    """Writes the one usage line of a bad flag; returns `EXIT_USAGE`."""
    return fail(prog, f"usage error: {flag_style(message, names)} (see --help)", EXIT_USAGE,
                stream)


def guarded(prog, body, *, names=(), stdout=None, stderr=None):
    """Runs `body()`, prints the artifacts it returns; returns the exit status.

    Every error becomes one line on `stderr` (see the module docstring):
    `UsageError`/`ConfigError` -> 2; missing data, a non-finite loss,
    `CommandFailed`, `RunDirError`, `CheckpointError` -> 1; `Preempted` -> 42;
    `Interrupted` and a Ctrl-C before training -> 130.

    Args:
        prog: the command, as the user types it (starts every error line).
        body: a function of no argument returning `(what, path)` pairs.
        names: the command's flag names (config messages name them as flags).
    """
    from tfgap.data import DatasetNotPreparedError  # noqa: PLC0415
    from tfgap.training import (  # noqa: PLC0415
        CheckpointError,
        ConfigError,
        Interrupted,
        NonFiniteLossError,
        Preempted,
        RunDirError,
    )

    try:
        artifacts = body()
    except (UsageError, ConfigError) as e:
        return usage(prog, e, names, stderr)
    except (DatasetNotPreparedError, NonFiniteLossError, CommandFailed, RunDirError,
            CheckpointError) as e:
        return fail(prog, flag_style(e, names), EXIT_FAILED, stderr)
    except Interrupted as e:
        return fail(prog, f"{e}. Re-run the same command to resume.", EXIT_INTERRUPTED, stderr)
    except Preempted as e:
        return fail(prog, f"{e}. Re-run the same command to resume.", EXIT_PREEMPTED, stderr)
    except KeyboardInterrupt:
        return fail(prog, "Interrupted (Ctrl-C) before training started; nothing was saved.",
                    EXIT_INTERRUPTED, stderr)
    print_artifacts(artifacts or (), stdout)
    return EXIT_OK


def print_artifacts(artifacts, stream=None):
    """The command's last lines: `Wrote <what>: <path>`, one per artifact."""
    stream = sys.stdout if stream is None else stream
    artifacts = [(what, path) for what, path in artifacts if path]
    width = max((len(what) for what, _ in artifacts), default=0)
    for what, path in artifacts:
        stream.write(f"Wrote {what + ':':<{width + 1}} {path}\n")
    stream.flush()


# -- the entry point ----------------------------------------------------------------------


def execute(prog, *, define, run, doc=None, argv=None, stdout=None, stderr=None):
    """Parses `argv`, runs the command; returns the exit status (see `main`)."""
    argv = list(sys.argv if argv is None else argv)
    stdout = sys.stdout if stdout is None else stdout
    quiet_logs(verbosity_from_argv(argv))
    fv = flags.FlagValues()
    define_verbosity(fv)
    define(fv, argv)
    names = list(_own_flags(fv))
    if any(arg in HELP_ARGS for arg in argv[1:]):
        stdout.write(help_text(prog, doc, fv))
        stdout.flush()
        return EXIT_OK
    try:
        rest = fv(argv)
    except flags.Error as e:
        return usage(prog, e, names, stderr)
    if len(rest) > 1:
        return fail(prog, f"usage error: {positional_message(rest[1:], names)} (see --help)",
                    EXIT_USAGE, stderr)
    if fv["verbosity"].present:
        quiet_logs(fv.verbosity)
    from absl import logging  # noqa: PLC0415

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()  # absl's log handler asks; its own flags keep defaults
    logging.use_absl_handler()
    return guarded(prog, lambda: run(fv), names=names, stdout=stdout, stderr=stderr)


def main(prog, *, define, run, doc=None, argv=None):
    """The whole entry point of a command: flags in, `run` called, artifacts out; exits.

    Args:
        prog: the command as typed, e.g. `"python -m tfgap.recipes.mnist"`.
        define: `define(flag_values, argv)` defines the command's flags.
        run: `run(flag_values)` does the work; returns `(what, path)` pairs.
        doc: the text at the top of `--help` (the module docstring).
        argv: the command line, `argv[0]` included (default `sys.argv`).
    """
    status = execute(prog, define=define, run=run, doc=doc, argv=argv)
    if status in (EXIT_PREEMPTED, EXIT_INTERRUPTED):
        # The checkpoint and history.json are on disk and the writers closed: leave at once,
        # without the seconds TensorFlow's thread pools take to wind down (a preempted job
        # has a short grace period).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
