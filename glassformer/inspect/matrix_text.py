"""Labelled matrices as plain text: one header line, column labels, then one labelled row each.

The layout is also what tests read back, so it is kept simple: a block starts with
"▸ KEY  title", its next line holds the column labels, each further line is a row label and
one number per column, and a blank line ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Block:
    """A matrix with labels, ready to print.

    Args:
        key: a short unique name, e.g. "enc.l0.attn.h1.softmax".
        title: what the numbers are, in one line.
        values: [rows, cols] numbers.
        rows, cols: the row and column labels (tokens, or d0, d1, ... for features).
        source: the HookPoint or parameter the numbers were read from.
        integer: print without decimals (token ids).
    """

    key: str
    title: str
    values: np.ndarray
    rows: list[str]
    cols: list[str]
    source: str = ""
    integer: bool = False


def _cell(value: float, precision: int, integer: bool) -> str:
    if integer:
        return str(int(value))
    text = f"{value:.{precision}f}"
    return "0." + "0" * precision if text.startswith("-") and float(text) == 0 else text  # no "-0.0000"


def format_block(block: Block, precision: int = 4) -> str:
    """The block as text lines: header, column labels, rows; no trailing blank line."""
    values = np.asarray(block.values, dtype=np.float64).reshape(len(block.rows), len(block.cols))
    cells = [[_cell(v, precision, block.integer) for v in row] for row in values]
    width = max([len(c) for c in block.cols] + [len(x) for row in cells for x in row]) + 2
    label = max([len(r) for r in block.rows] + [4])
    shape = f"[{len(block.rows)} × {len(block.cols)}]"
    source = f"   ← {block.source}" if block.source else ""
    lines = [f"▸ {block.key}  {block.title}  {shape}{source}"]
    lines.append(" " * label + "".join(c.rjust(width) for c in block.cols))
    for name, row in zip(block.rows, cells):
        lines.append(name.ljust(label) + "".join(x.rjust(width) for x in row))
    return "\n".join(lines)


def feature_labels(prefix: str, n: int, start: int = 0) -> list[str]:
    """["d0", "d1", ...] style column labels."""
    return [f"{prefix}{i}" for i in range(start, start + n)]
