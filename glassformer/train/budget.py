"""A learning-rate schedule fitted to the run's length, and a time budget turned into steps.

With `--steps N` the warm-up and the decay are fitted to N once. With `--minutes M` the number
of steps is not known in advance: it is estimated from the step time measured so far and the
schedule is re-fitted as training goes, so that the decay ends when the time runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from glassformer.train.schedule import learning_rate

WARMUP_FRACTION = 0.05
"""Warm-up as a share of the run: long enough for Adam's moments to settle, short next to the decay."""
MIN_WARMUP, MAX_WARMUP = 10, 400
FLOOR_FRACTION = 0.1
"""A fitted decay ends at this share of the peak, so a run extended past its end still learns."""


def fit_warmup(total: int) -> int:
    """Warm-up steps for a run of `total` steps: 5% of it, within [10, 400] and never past the run."""
    return max(1, min(total, max(MIN_WARMUP, min(MAX_WARMUP, round(WARMUP_FRACTION * total)))))


@dataclass(frozen=True)
class Schedule:
    """A named schedule ("noam", "cosine", "constant") with everything it needs; `lr(step)` is pure.

    Args:
        name: the schedule's name.
        d_model: the model width (the paper's noam scale).
        peak: the peak rate; None is the paper's d_model^-0.5 scale (noam only).
        warmup: warm-up steps.
        total: the step where the cosine decay reaches floor (None: never decays).
        floor: the rate at and after `total`.
        fitted_warmup: the warm-up follows `total` (re-fitted until warm-up is over).
    """

    name: str
    d_model: int
    peak: float | None
    warmup: int
    total: int | None
    floor: float = 0.0
    fitted_warmup: bool = False

    def lr(self, step: int) -> float:
        """The rate of (1-based) step."""
        return learning_rate(step, self.name, self.d_model, self.warmup, self.peak, self.total, self.floor)

    def refit(self, total: int, step: int = 0) -> "Schedule":
        """The same schedule ending at `total`; a fitted warm-up follows it while `step` is still in it."""
        total = max(total, step, 1)
        if not self.fitted_warmup or step >= self.warmup:
            return replace(self, total=total)
        # A warm-up under way never ends before the current step: the rate keeps rising smoothly.
        return replace(self, total=total, warmup=max(fit_warmup(total), step))

    def saved(self) -> dict:
        """What a checkpoint keeps so that a resumed run continues this very schedule."""
        return {"warmup": self.warmup, "total": self.total}


def fitted(d_model: int, peak: float, total: int, warmup: int | None = None, name: str = "cosine",
           floor: float | None = None) -> Schedule:
    """Linear warm-up to peak, then cosine decay to floor (default peak * 0.1) at step `total`.

    Args:
        warmup: given warm-up steps; None fits them to total (and keeps fitting them on refit).
    """
    floor = peak * FLOOR_FRACTION if floor is None else floor
    return Schedule(name, d_model, peak, fit_warmup(total) if warmup is None else warmup, total, floor,
                    fitted_warmup=warmup is None)


@dataclass
class TimeBudget:
    """Turns what is left of a wall-clock budget into steps, from the step time measured this session.

    Args:
        seconds: the whole budget (a resumed run counts the time it had already used).
        first_step: the step this session started from.
        first_elapsed: the run's elapsed seconds when this session started.
    """

    seconds: float
    first_step: int = 0
    first_elapsed: float = 0.0

    def total_steps(self, step: int, elapsed: float) -> int | None:
        """The step at which the time will run out, at the pace since this session started; None
        before a step has been measured."""
        done, spent = step - self.first_step, elapsed - self.first_elapsed
        if done < 1 or spent <= 0:
            return None
        return step + max(0, int((self.seconds - elapsed) * done / spent))


DEFAULT_STEPS = 1000
"""Steps of a run given neither --steps nor --minutes."""
FIRST_GUESS = 1000
"""Steps assumed before the first one is timed, when only --minutes bounds the run."""


def refits(config) -> bool:
    """Whether the schedule follows a time budget as training goes (fitted and bounded by --minutes)."""
    return config.minutes is not None and bool({"warmup", "decay"} & set(config.auto))


def schedule_for(config, d_model: int, saved: dict | None = None) -> Schedule:
    """The run's schedule from its training configuration; a fitted one continues from `saved`
    (a checkpoint's Schedule.saved()) when resumed, whatever budget the resumed run was given.

    Args:
        config: a TrainConfig.
    """
    total = config.decay_steps or config.steps
    if "decay" in config.auto and total is None:
        total = FIRST_GUESS if config.minutes is not None else DEFAULT_STEPS
    schedule = Schedule(config.schedule, d_model, config.lr, config.warmup, total, config.min_lr,
                        fitted_warmup="warmup" in config.auto)
    if saved is not None and {"warmup", "decay"} & set(config.auto):
        schedule = replace(schedule, warmup=saved["warmup"], total=saved["total"])
    return schedule


def extension_note(config, schedule: Schedule) -> str | None:
    """What a resumed run asked to go past its fitted schedule's end should know (else None)."""
    if "decay" not in config.auto or schedule.total is None or not config.steps or config.steps <= schedule.total:
        return None
    return (f"the schedule stays as fitted when the run started (decay to {schedule.floor:g} at step "
            f"{schedule.total:,}): steps {schedule.total + 1:,}-{config.steps:,} train at {schedule.floor:g}")
