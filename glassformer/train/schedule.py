"""Learning-rate schedules as pure functions of the step (1-based)."""

from __future__ import annotations

import math


def noam(step: int, d_model: int, warmup: int, peak: float | None = None) -> float:
    """The paper's d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    Args:
        peak: rescale so that the rate at step == warmup equals peak; None keeps the paper's scale.
    """
    step = max(step, 1)
    rate = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    if peak is None:
        return rate
    return rate * peak / (d_model**-0.5 * warmup**-0.5)


def cosine(step: int, total: int, warmup: int, peak: float, floor: float = 0.0) -> float:
    """Linear warm-up to peak over `warmup` steps, then cosine decay to floor at step `total`."""
    step = max(step, 1)
    if step <= warmup:
        return peak * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def constant(step: int, warmup: int, peak: float) -> float:
    """Linear warm-up to peak, then constant."""
    return peak * min(1.0, max(step, 1) / warmup)


def learning_rate(step: int, schedule: str, d_model: int, warmup: int, lr: float | None, total: int | None,
                  floor: float = 0.0) -> float:
    """The rate at `step` for a named schedule ("noam", "cosine", "constant")."""
    if schedule == "noam":
        return noam(step, d_model, warmup, lr)
    peak = 1e-3 if lr is None else lr
    if schedule == "cosine":
        return cosine(step, total or step, warmup, peak, floor)
    return constant(step, warmup, peak)

