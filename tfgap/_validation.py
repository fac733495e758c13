"""Argument checks shared by the library and the training settings (private).

The schedules (`tfgap.schedules`) check their arguments with these, and so
does every `TrainConfig` setting (`tfgap.training.config.Setting.check`), so a
value means the same and fails the same way everywhere. This module imports
nothing from tfgap: any part of the library may use it.

Every check returns the value normalized to plain Python (`int`, `float`, a
tuple of floats, ...) or raises `error` (`ValueError`, or the subclass the
caller passes, e.g. `tfgap.training.ConfigError`). The messages name the
argument as Python does, what was expected and what was received:

    Expected `batch_size` >= 1. Received: batch_size=0

so that the command line can name the same argument as a flag
(`tfgap.recipes.cli.flag_style`: `--batch_size`).

Example:

>>> integer("batch_size", 128, minimum=1)
128
>>> number_list("lr_values", [1, 0.1], minimum=0)
(1.0, 0.1)
>>> integer("batch_size", 0, minimum=1)
Traceback (most recent call last):
  ...
ValueError: Expected `batch_size` >= 1. Received: batch_size=0
"""

import math
import numbers


def bounds_text(minimum=None, maximum=None, above=None, below=None):
    """Bounds in words: `">= 1"`, `"> 0"`, `"in [0, 1)"`, `"<= 2"`, or `""` for none.

    `minimum` and `maximum` are inclusive, `above` and `below` exclusive.

    Example:

    >>> bounds_text(minimum=0, below=1), bounds_text(above=0), bounds_text()
    ('in [0, 1)', '> 0', '')
    """
    low = (f"[{_number_text(minimum)}" if minimum is not None
           else f"({_number_text(above)}" if above is not None else None)
    high = (f"{_number_text(maximum)}]" if maximum is not None
            else f"{_number_text(below)})" if below is not None else None)
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def _number_text(value):
    """`value` as written: integers in full (`4294967295`), other numbers as `:g`."""
    if isinstance(value, numbers.Integral) or (float(value).is_integer() and abs(value) < 1e16):
        return str(int(value))
    return f"{value:g}"


def check_bounds(name, value, *, minimum=None, maximum=None, above=None, below=None,
                 received=None, each=False, error=ValueError):
    """Raises `error` unless `value` lies within the bounds (see `bounds_text`).

    Args:
        name: the argument's name.
        value: the number to check.
        received: what the message shows as received (default `value`; the
            whole list when `value` is one of its entries).
        each: `value` is an entry of the list `name` (the message says so).
        error: the exception class raised.
    """
    bad = ((minimum is not None and value < minimum)
           or (above is not None and value <= above)
           or (maximum is not None and value > maximum)
           or (below is not None and value >= below))
    if bad:
        received = value if received is None else received
        shown = f"{received:g}" if isinstance(received, float) else f"{received}"
        what = f"every entry of `{name}`" if each else f"`{name}`"
        text = bounds_text(minimum, maximum, above, below)
        raise error(f"Expected {what} {text}. Received: {name}={shown}")


def boolean(name, value, *, error=ValueError):
    """`value` if it is a `bool` (`1` is not)."""
    if not isinstance(value, bool):
        raise error(f"Expected `{name}` to be a bool. Received: {name}={value!r}")
    return value


def integer(name, value, *, minimum=None, maximum=None, above=None, below=None,
            whole_floats=False, error=ValueError):
    """`value` as an `int` within the bounds (a `bool` is not an integer).

    Args:
        whole_floats: also accept floats without a fractional part
            (`390.0`, e.g. a step count computed as a float).
    """
    whole = (whole_floats and isinstance(value, numbers.Real) and math.isfinite(value)
             and value == int(value))
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral) or whole):
        raise error(f"Expected `{name}` to be an integer. Received: {name}={value!r}")
    value = int(value)
    check_bounds(name, value, minimum=minimum, maximum=maximum, above=above, below=below,
                 error=error)
    return value


def positive_int(name, value, *, error=ValueError):
    """`value` as an `int` >= 1; whole floats such as `390.0` pass (`integer`)."""
    return integer(name, value, minimum=1, whole_floats=True, error=error)


def _is_finite_number(value):
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value))


def number(name, value, *, minimum=None, maximum=None, above=None, below=None,
           error=ValueError):
    """`value` as a finite `float` within the bounds."""
    if not _is_finite_number(value):
        raise error(f"Expected `{name}` to be a finite number. Received: {name}={value!r}")
    value = float(value)
    check_bounds(name, value, minimum=minimum, maximum=maximum, above=above, below=below,
                 error=error)
    return value


def number_list(name, values, *, minimum=None, maximum=None, above=None, below=None,
                error=ValueError):
    """`values` (any iterable of numbers but a string) as a tuple of finite floats in bounds."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise error(f"Expected `{name}` to be a list of numbers. Received: {name}={values!r}")
    values = list(values)
    if not all(_is_finite_number(v) for v in values):
        raise error(f"Expected every entry of `{name}` to be a finite number. "
                    f"Received: {name}={values!r}")
    values = [float(v) for v in values]
    for v in values:
        check_bounds(name, v, minimum=minimum, maximum=maximum, above=above, below=below,
                     received=values, each=True, error=error)
    return tuple(values)


def choice(name, value, choices, *, error=ValueError):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise error(f"Expected `{name}` in {list(choices)}. Received: {name}={value!r}")
    return value


def strictly_increasing(name, values, *, error=ValueError):
    """`values` if each entry is larger than the one before."""
    if any(not a < b for a, b in zip(values, values[1:])):
        raise error(f"Expected `{name}` to be strictly increasing. Received: "
                    f"{name}={list(values)}")
    return values


def one_value_per_phase(boundaries, values, *, names=("boundaries", "values"),
                        error=ValueError):
    """Raises unless there is one more value than boundaries (piecewise-constant rates).

    Example:

    >>> one_value_per_phase([10.0], [0.1, 0.01, 0.001], names=("lr_boundaries", "lr_values"))
    Traceback (most recent call last):
      ...
    ValueError: Expected len(lr_values) == len(lr_boundaries) + 1 (a value before the first \
boundary and one from each). Received: lr_boundaries=[10.0], lr_values=[0.1, 0.01, 0.001]
    """
    b_name, v_name = names
    if len(values) != len(boundaries) + 1:
        raise error(
            f"Expected len({v_name}) == len({b_name}) + 1 (a value before the first boundary "
            f"and one from each). Received: {b_name}={list(boundaries)}, "
            f"{v_name}={list(values)}"
        )


def stretch(name, value, *, minimum=1.0, text=False, error=ValueError):
    """A regime-adaptation setting: `True`, `False`, or a float factor >= `minimum`.

    Args:
        text: also read strings, as the command line gives them: `"true"`,
            `"yes"`, `"false"`, `"no"`, `"0"` or a number.

    Example:

    >>> stretch("regime_adaptation", True), stretch("regime_adaptation", 4)
    (True, 4.0)
    >>> stretch("regime_adaptation", "no", text=True)
    False
    """
    number_value = value
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and text:
        lowered = value.strip().lower()
        if lowered in ("true", "yes"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        try:
            number_value = float(lowered)
        except ValueError:
            number_value = None
    if _is_finite_number(number_value) and number_value >= minimum:
        return float(number_value)
    raise error(f"Expected `{name}` to be true, false or a factor >= {minimum:g}. "
                f"Received: {name}={value!r}")


def round_half_up(x):
    """Rounds to the nearest integer, halves upwards.

    Python's `round` rounds 2.5 down to 2. The 9-digit pre-rounding removes
    float noise such as `0.1 * 3 * 10 == 3.0000000000000004`.

    Example:

    >>> round_half_up(2.5), round(2.5), round_half_up(0.1 * 3 * 10)
    (3, 2, 3)
    """
    return int(math.floor(round(x, 9) + 0.5))
