"""What a training run tells the user and writes to metrics.jsonl; only the first process does either.

Under torchrun every process runs the same loop; the others stay silent, so each line appears once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

METRICS_FILE = "metrics.jsonl"


class Logger:
    """Lines for the user, a progress bar, and records in the run's metrics file.

    Args:
        run_dir: the run folder holding metrics.jsonl.
        is_main: this is the first process (rank 0); every other one prints and writes nothing.
        print_line: called with each line meant for the user.
        progress: show a progress bar.
    """

    def __init__(self, run_dir: str | Path, is_main: bool = True, print_line: Callable[[str], None] = print,
                 progress: bool = True):
        self.run_dir, self.is_main = Path(run_dir), is_main
        self._print = print_line
        self.progress = progress and is_main

    def __call__(self, line: str) -> None:
        if self.is_main:
            self._print(line)

    def metrics(self, record: dict) -> None:
        """Append one record (a logged step or an evaluation) to metrics.jsonl."""
        if not self.is_main:
            return
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def bar(self, total: int | None, done: int, minutes: float | None):
        """A tqdm bar over steps (or seconds, with a time budget); without one, a stand-in that only writes lines."""
        if not self.progress:
            return _NoBar(self)
        from tqdm import tqdm

        if total is not None and minutes is None:
            return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True, mininterval=1.0)
        return tqdm(total=round(minutes * 60), unit="s", dynamic_ncols=True, mininterval=1.0,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}<{remaining}{postfix}]")


class _NoBar:
    """The progress bar's interface when none is shown: its lines still reach the user (first process only)."""

    def __init__(self, log: Callable[[str], None]):
        self._log = log

    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def write(self, line):
        self._log(line)

    def close(self):
        pass


def bar_advance(bar, minutes: float | None, elapsed: float) -> float:
    """How far to move the bar after a step: one step, or the seconds elapsed since it was last moved."""
    if minutes is None or not hasattr(bar, "n"):
        return 1
    return max(0.0, min(elapsed, minutes * 60) - bar.n)


def format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
