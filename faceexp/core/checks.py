"""Argument checks shared by every faceexp function: one rule and one message each.

Every message reads "<name> must be <what is accepted>, got <value>", so that an
error names the parameter and says how to fix the call.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["positive_int", "finite_real", "seed", "one_of"]


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools refused), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def finite_real(value: Any, name: str) -> float:
    """``value`` as a finite float (bools refused), or ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def seed(value: Any, name: str = "seed", *, fresh: bool = False) -> int:
    """A non-negative int seed; None draws a fresh one when ``fresh`` (else ValueError)."""
    if value is None and fresh:
        return int(np.random.default_rng().integers(0, 2 ** 63 - 1))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        accepted = "a non-negative int or None" if fresh else "a non-negative int"
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def one_of(value: Any, allowed: Sequence, name: str) -> Any:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
