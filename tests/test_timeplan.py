"""The time planner is arithmetic on measured numbers: here the step times are made up, so each case can say
exactly which epochs must come out."""

from __future__ import annotations

import pytest

from dnervcodec.errors import ConfigError
from dnervcodec.fit import FitConfig
from dnervcodec.options import parse_duration
from dnervcodec.timeplan import (MAX_EPOCHS, PACE_WEIGHT, PROBE_WARM_STEPS, Pace, Stage, TimeBudget, plan_epochs, stage,
                                 work_seconds)

ENCODE = (Stage("fit", 1.0, 1.0, 0.5), Stage("rd", 0.25, 2.0, 0.25))  # an rd epoch costs two fit epochs


def test_work_seconds_counts_what_is_left_of_each_stage() -> None:
    # fit: 10 epochs of 4 s with 2.5 done, then 2 s after; rd: 3 epochs of 8 s, then 2 s after.
    assert work_seconds([10, 3], [4.0, 8.0], [0.5, 0.25], done=2.5) == pytest.approx(7.5 * 4 + 2 + 24 + 2)


def test_plan_fills_the_time_left_in_the_stages_proportions() -> None:
    # A fit epoch of 10 s, an rd epoch of 20 s, rd a quarter of the fit's epochs: F fit epochs cost
    # 10 F + 20 round(F / 4) + 5 + 5 seconds; 600 s left -> F = 39 (390 + 200 + 10 = 600).
    epochs = plan_epochs(600.0, [10.0, 20.0], [1.0, 0.25], [0.5, 0.25])
    assert epochs == (39, 10)
    assert abs(work_seconds(epochs, [10.0, 20.0], [0.5, 0.25]) - 600.0) <= 10.0
    # Twice the time, about twice the epochs; a machine twice as slow, about half.
    assert plan_epochs(1200.0, [10.0, 20.0], [1.0, 0.25], [0.5, 0.25])[0] in (79, 80, 81)
    assert plan_epochs(600.0, [20.0, 40.0], [1.0, 0.25], [0.5, 0.25])[0] in (19, 20, 21)


@pytest.mark.parametrize("left", [37.0, 123.4, 601.0, 3599.0])
def test_the_plan_is_the_nearest_end_to_the_time_left(left: float) -> None:
    seconds, shares, after = [3.0, 4.0], [1.0, 0.25], [0.3, 0.2]
    best = plan_epochs(left, seconds, shares, after)
    cost = lambda f: work_seconds((f, max(1, round(f * 0.25))), seconds, after)  # noqa: E731
    brute = min(range(1, 2000), key=lambda f: abs(cost(f) - left))
    assert abs(cost(best[0]) - left) == pytest.approx(abs(cost(brute) - left))


def test_a_stage_under_way_keeps_its_done_epochs_and_finishes_the_current_one() -> None:
    # No time left: stop at the boundary (5 epochs done), or finish the epoch under way (5.3 done -> 6).
    assert plan_epochs(0.0, [10.0], [1.0], [0.0], done=5.0) == (5,)
    assert plan_epochs(0.0, [10.0], [1.0], [0.0], done=5.3) == (6,)
    # 100 s left at 10 s an epoch, 5 done: 15 in all.
    assert plan_epochs(100.0, [10.0], [1.0], [0.0], done=5.0) == (15,)


def test_too_little_time_gives_the_least_work_and_no_time_limit_gives_the_most() -> None:
    assert plan_epochs(1.0, [10.0, 20.0], [1.0, 0.25], [0.5, 0.25]) == (1, 1)
    assert plan_epochs(-50.0, [10.0], [1.0], [0.0]) == (1,)
    assert plan_epochs(1e12, [0.001], [1.0], [0.0]) == (MAX_EPOCHS,)
    with pytest.raises(ValueError):
        plan_epochs(10.0, [0.0], [1.0], [0.0])


def test_a_budget_plans_the_stage_it_is_asked_about_and_the_ones_after_it() -> None:
    budget = TimeBudget(600.0, deadline=1000.0, stages=ENCODE)
    # The fit, measured at 10 s an epoch, at time 400 (600 s left): its rd epochs cost 2 x 10 s.
    assert budget.plan("fit", 10.0, 0.0, now=400.0) == (39, 10)
    assert budget.epochs("fit", 10.0, 0.0, now=400.0) == 39
    # Later, the fit measured slower (15 s an epoch) with 20 epochs done and 300 s left: fewer epochs.
    slower = budget.epochs("fit", 15.0, 20.0, now=700.0)
    assert 20 < slower < 39
    # The rd stage plans only itself from its own pace: 100 s left at 20 s an epoch, 5 s after -> 5 epochs.
    assert budget.plan("rd", 20.0, 0.0, now=900.0) == (5,)


def test_a_budget_round_trips_through_the_fit_config_and_only_its_seconds_are_identity() -> None:
    budget = TimeBudget(600.0, 1234.5, ENCODE)
    cfg = FitConfig(epochs=40, time=budget)
    assert FitConfig.from_dict(cfg.to_dict()) == cfg
    ident = cfg.identity()
    assert "epochs" not in ident and ident["time"] == 600.0
    # Another start (deadline) and another first plan (epochs) are the same run; other seconds are not.
    assert FitConfig(epochs=33, time=TimeBudget(600.0, 99.0, ENCODE)).identity() == ident
    assert FitConfig(epochs=40, time=TimeBudget(900.0, 1234.5, ENCODE)).identity() != ident
    assert FitConfig(epochs=40).identity()["epochs"] == 40 and FitConfig(epochs=40).identity()["time"] is None
    with pytest.raises(ConfigError):
        TimeBudget(0.0, 1.0, ENCODE)


def test_stages_get_their_calibrated_costs() -> None:
    rd = stage("rd", 0.25)
    assert rd.share == 0.25 and rd.cost > 1.0 and 0 < rd.after < 1
    assert stage("fit", after=0.1).after == 0.1


def test_pace_leaves_out_the_warm_up_steps_and_averages_over_epochs() -> None:
    pace = Pace(now=0.0)
    t = 0.0
    for _ in range(PROBE_WARM_STEPS):  # slow first steps: not timed
        t += 5.0
        pace.step(t)
    assert pace.step_seconds(t) is None
    for _ in range(4):
        t += 0.5
        pace.step(t)
    assert pace.step_seconds(t) == pytest.approx(0.5)
    pace.restart(t)  # an epoch boundary: 0.5 s a step so far
    assert pace.step_seconds(t) == pytest.approx(0.5)
    t += 2.0  # a step four times slower (another job) moves the estimate halfway
    pace.step(t)
    assert pace.step_seconds(t) == pytest.approx(0.5 + PACE_WEIGHT * 1.5)
    pace.restart(t)
    for _ in range(3):  # a lasting change is followed within a few epochs
        t += 2.0
        pace.step(t)
        pace.restart(t)
    assert 1.7 < pace.step_seconds(t) <= 2.0


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("300", 300),
                                          (".5m", 30), ("2h5s", 7205), (" 20M ", 1200), ("1h30m15s", 5415)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5m", "soon", "", "h", "1h1h", "5 m", "1e3", "8d", "nan", "200h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)
