"""Argument validation shared by the schedules (private).

Every check returns the normalized plain-Python value, or raises `ValueError`
naming the argument, the value received and what was expected.
"""

import math
import numbers


def positive_int(name, value):
    """Returns `value` as an `int` > 0 (integral floats such as `390.0` pass)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value != int(value)
        or value <= 0
    ):
        raise ValueError(
            f"Expected `{name}` to be a positive integer, but received {name}={value!r}."
        )
    return int(value)


def finite_float(name, value, minimum=None):
    """Returns `value` as a finite `float`, optionally `>= minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be a finite number, but received {name}={value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"Expected `{name}` >= {minimum}, but received {name}={value!r}.")
    return float(value)


def float_list(name, values, minimum=None):
    """Returns `values` (any iterable of numbers) as a list of finite floats."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(
            f"Expected `{name}` to be a list of numbers, but received {name}={values!r}."
        )
    values = list(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(
                f"Expected `{name}` to hold finite numbers only, but received {name}={values!r}."
            )
        if minimum is not None and v < minimum:
            raise ValueError(
                f"Expected every entry of `{name}` to be >= {minimum}, but received "
                f"{name}={values!r}."
            )
    return [float(v) for v in values]


def strictly_increasing(name, values):
    """Raises unless `values` is strictly increasing."""
    for a, b in zip(values, values[1:]):
        if not a < b:
            raise ValueError(
                f"Expected `{name}` to be strictly increasing, but received {name}={values!r} "
                f"({a!r} is followed by {b!r})."
            )


def round_half_up(x):
    """Rounds to the nearest integer, halves upwards (Python's `round` would
    round 2.5 down to 2). The 9-digit pre-rounding removes float noise such as
    `0.1 * 3 * 10 == 3.0000000000000004`."""
    return int(math.floor(round(x, 9) + 0.5))
