"""Argument types for numeric options: finite numbers in a stated range, checked when parsing.

A value outside the range is one line naming the option and the range, and exit status 2,
before anything is built or trained.
"""

from __future__ import annotations

import argparse
import math


def _bound(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def real(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """A finite float with optional bounds (open bounds exclude the value itself)."""
    wanted = " ".join(filter(None, ["a finite number", _bound(low, high, low_open, high_open)]))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and (value >= high if high_open else value > high)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def integer(low: int | None = None, high: int | None = None):
    """A whole number with optional inclusive bounds."""
    wanted = " ".join(filter(None, ["a whole number", _bound(low, high, False, False)]))

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


POSITIVE = real(0, low_open=True)
NON_NEGATIVE = real(0)
PROBABILITY = real(0, 1, low_open=True, high_open=True)
FRACTION = real(0, 1, high_open=True)  # [0, 1)
COUNT = integer(1)
NON_NEGATIVE_COUNT = integer(0)
SEED = integer(0, 2**63 - 1)
