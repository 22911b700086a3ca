"""The schedule fitted to a run's length, and a time budget turned into steps."""

import pytest

from glassformer.train.budget import DEFAULT_STEPS, FIRST_GUESS, Schedule, TimeBudget, fit_warmup, fitted, schedule_for
from glassformer.train.config import TrainConfig
from glassformer.train.schedule import learning_rate


@pytest.mark.parametrize("total, warmup", [(1, 1), (5, 5), (100, 10), (1000, 50), (2676, 134), (20_000, 400)])
def test_warmup_is_five_percent_within_bounds(total, warmup):
    assert fit_warmup(total) == warmup


def test_fitted_schedule_rises_to_the_peak_and_ends_at_the_floor():
    schedule = fitted(128, 2e-3, 1000)
    assert (schedule.warmup, schedule.total, schedule.floor) == (50, 1000, pytest.approx(2e-4))
    assert schedule.lr(1) == pytest.approx(2e-3 / 50)
    assert schedule.lr(25) == pytest.approx(1e-3)
    assert schedule.lr(50) == pytest.approx(2e-3)
    assert schedule.lr(525) == pytest.approx(1.1e-3)  # halfway through the decay: (peak + floor) / 2
    assert schedule.lr(1000) == pytest.approx(2e-4)
    assert schedule.lr(1500) == pytest.approx(2e-4)  # past the end: the floor
    rates = [schedule.lr(s) for s in range(50, 1001)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_refit_moves_the_end_and_a_warmup_under_way():
    schedule = fitted(128, 2e-3, 1000)
    during = schedule.refit(2000, step=10)
    assert (during.warmup, during.total) == (100, 2000)
    assert during.lr(2000) == pytest.approx(2e-4) and during.lr(1000) > 1e-3
    after = during.refit(600, step=300)  # warm-up over: only the end moves
    assert (after.warmup, after.total) == (100, 600)
    assert after.lr(600) == pytest.approx(2e-4)
    # A shorter estimate never ends a warm-up before the current step.
    assert schedule.refit(100, step=30).warmup == 30
    # A given warm-up is kept.
    assert fitted(128, 2e-3, 1000, warmup=7).refit(5000, step=3).warmup == 7


def test_time_budget_turns_the_time_left_into_steps():
    budget = TimeBudget(100.0)
    assert budget.total_steps(0, 0.0) is None
    assert budget.total_steps(10, 5.0) == 10 + 190  # 95 s left at 0.5 s a step
    resumed = TimeBudget(100.0, first_step=200, first_elapsed=60.0)  # 40 s left after a resume
    assert resumed.total_steps(210, 62.0) == 210 + 190
    assert budget.total_steps(500, 120.0) == 500  # time is up


def test_schedule_for_a_configuration():
    paper = schedule_for(TrainConfig(), 512)
    assert paper.lr(4000) == pytest.approx(learning_rate(4000, "noam", 512, 4000, None, None)) == pytest.approx(512**-0.5 * 4000**-0.5)
    by_steps = schedule_for(TrainConfig(schedule="cosine", lr=2e-3, min_lr=2e-4, warmup=15, steps=300, decay_steps=300,
                                        auto=["warmup", "decay"]), 128)
    assert by_steps == Schedule("cosine", 128, 2e-3, 15, 300, 2e-4, fitted_warmup=True)
    by_time = schedule_for(TrainConfig(schedule="cosine", lr=2e-3, minutes=1.0, auto=["warmup", "decay"]), 128)
    assert by_time.total == FIRST_GUESS
    assert schedule_for(TrainConfig(schedule="cosine", lr=2e-3, auto=["decay"]), 128).total == DEFAULT_STEPS
    saved = {"warmup": 37, "total": 777}  # a resumed run continues the schedule its checkpoint holds
    assert schedule_for(TrainConfig(schedule="cosine", lr=2e-3, steps=5000, decay_steps=300, auto=["decay"]), 128,
                        saved).saved() == saved
