"""Attention weights as a shaded grid in the terminal: queries down the side, keys across the top.

Shades are unicode blocks ( ░▒▓█ for 0, 0.25, 0.5, 0.75, 1 rounded) or, with color, a grey ramp
of ANSI 256-colour backgrounds; either way the shade is the probability itself, not scaled per
row, so grids of different heads compare directly.
"""

from __future__ import annotations

import numpy as np

SHADES = " ░▒▓█"
CELL = 2  # characters per cell, so that cells are roughly square
MAX_LABEL = 12


def shade(p: float) -> str:
    """The block character for a probability in [0, 1]."""
    return SHADES[int(round(min(max(p, 0.0), 1.0) * (len(SHADES) - 1)))]


def _ansi(p: float) -> str:
    level = 232 + int(round(min(max(p, 0.0), 1.0) * 23))  # 232 black ... 255 white
    return f"\x1b[48;5;{level}m" + " " * CELL + "\x1b[0m"


def _clip(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def shade_grid(weights: np.ndarray, rows: list[str], cols: list[str], color: bool = False) -> str:
    """Draw one attention map.

    Args:
        weights: [queries, keys] probabilities.
        rows: the query tokens; cols: the key tokens, written top-down above their column.
        color: ANSI grey backgrounds instead of block characters.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(rows), len(cols)):
        raise ValueError(f"weights {weights.shape} do not match {len(rows)} row and {len(cols)} column labels")
    rows, cols = [_clip(r) for r in rows], [_clip(c) for c in cols]
    pad = max(len(r) for r in rows) + 1
    lines = []
    depth = max(len(c) for c in cols)
    for k in range(depth):
        letters = "".join((c[k] if k < len(c) else " ").ljust(CELL) for c in cols)
        lines.append(" " * pad + "│" + letters.rstrip())
    lines.append(" " * pad + "┼" + "─" * (CELL * len(cols)))
    for label, row in zip(rows, weights):
        cells = "".join(_ansi(p) if color else shade(p) * CELL for p in row)
        lines.append(label.rjust(pad - 1) + " │" + cells)
    return "\n".join(lines)


def legend(color: bool = False) -> str:
    """One line saying what the shades mean."""
    if color:
        return "shade: black = 0 … white = 1 (attention probability)"
    steps = "  ".join(f"{s * CELL}={i / (len(SHADES) - 1):.2f}" for i, s in enumerate(SHADES))
    return f"shade: {steps}  (attention probability, rounded)"


def values_table(weights: np.ndarray, rows: list[str], cols: list[str], precision: int = 2) -> str:
    """The same map as numbers, keys numbered across the top (see the grid for their tokens)."""
    weights = np.asarray(weights, dtype=np.float64)
    rows = [_clip(r) for r in rows]
    pad = max(len(r) for r in rows) + 1
    width = precision + 3
    lines = [" " * pad + "".join(str(i).rjust(width) for i in range(len(cols)))]
    for label, row in zip(rows, weights):
        lines.append(label.rjust(pad - 1) + " " + "".join(f"{p:.{precision}f}".rjust(width) for p in row))
    return "\n".join(lines)
