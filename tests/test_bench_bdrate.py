"""Bjontegaard deltas on hand-checkable curves."""

import math

import pytest

from bench.bdrate import bd_psnr, bd_rate, ms_ssim_db

RATE = [0.02, 0.05, 0.1, 0.2, 0.3]
PSNR = [27.0, 30.0, 32.5, 35.0, 36.5]


def test_same_curve_is_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR).value == pytest.approx(0, abs=1e-9)
    assert bd_psnr(RATE, PSNR, RATE, PSNR).value == pytest.approx(0, abs=1e-9)


def test_rates_scaled_by_0_8_is_minus_20_percent():
    res = bd_rate(RATE, PSNR, [0.8 * r for r in RATE], PSNR)
    assert res.reason is None
    assert res.value == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate([0.8 * r for r in RATE], PSNR, RATE, PSNR).value == pytest.approx(25.0, abs=1e-9)


def test_psnr_shift_of_one_db():
    assert bd_psnr(RATE, PSNR, RATE, [p + 1 for p in PSNR]).value == pytest.approx(1.0, abs=1e-9)


def test_only_the_overlap_is_used():
    # log-rate linear in PSNR, so PCHIP through any subset is the same line. The test curve covers only
    # 32..36 dB, where it needs 10 % fewer bits; below 32 dB it would need 50 % more (never looked at).
    psnr = [26.0, 28.0, 30.0, 32.0, 34.0, 36.0]
    rate = [0.05 * math.exp(0.3 * (p - 30)) for p in psnr]
    test = [0.9 * r if p >= 32 else 1.5 * r for r, p in zip(rate, psnr)]
    assert bd_rate(rate, psnr, test[3:], psnr[3:]).value == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(rate[:4], psnr[:4], test[3:], psnr[3:]).value is None  # touch at one point only


def test_no_overlap_returns_none_and_a_reason():
    value, reason = bd_rate(RATE, PSNR, [1, 2], [40.0, 42.0])
    assert value is None and reason.startswith("no overlap")
    value, reason = bd_psnr(RATE, PSNR, [1, 2], [40.0, 42.0])
    assert value is None and reason.startswith("no overlap")


def test_too_few_points_and_bad_rates():
    assert bd_rate(RATE, PSNR, [0.1], [30.0]).value is None
    assert bd_rate(RATE, PSNR, [0.1, 0.1], [30.0, 30.0]).value is None  # duplicates collapse to one point
    assert "positive" in bd_rate(RATE, PSNR, [0.0, 0.1], [28.0, 30.0]).reason


def test_ms_ssim_db():
    assert ms_ssim_db([0.9, 0.99]) == pytest.approx([10.0, 20.0])
    assert all(math.isfinite(v) for v in ms_ssim_db([1.0]))


def test_pareto_front_keeps_the_points_worth_choosing() -> None:
    from bench.bdrate import pareto_front

    assert pareto_front([0.1, 0.2, 0.4], [25.0, 27.0, 30.0]) == [0, 1, 2]  # a rising curve is all front
    # a noisy source against the clean clip: past 0.2 bpp the bits go to noise and quality falls
    assert pareto_front([0.4, 0.1, 0.8, 0.2], [24.0, 23.0, 21.0, 25.0]) == [1, 3]
    assert pareto_front([0.1, 0.1, 0.3], [20.0, 22.0, 22.0]) == [1]  # ties: the cheaper, better point wins


def test_bd_on_operational_fronts_ignores_the_noise_reproducing_tail() -> None:
    from bench.plot import bd_table

    anchor = {"name": "x265", "results": {"bpp": [0.05, 0.1, 0.2, 0.5, 1.0], "psnr-rgb": [22.0, 24.0, 25.0, 23.0, 20.0],
                                          "ms-ssim-rgb": [0.80, 0.85, 0.87, 0.84, 0.78]}}
    test = {"name": "stbn+x265", "results": {"bpp": [0.05, 0.1, 0.2], "psnr-rgb": [23.0, 25.0, 26.5],
                                             "ms-ssim-rgb": [0.84, 0.88, 0.90]}}
    table = bd_table(test, [anchor], pareto=True)
    row = [line for line in table.splitlines() if line.startswith("| x265 |")][0]
    assert "-" in row.split("|")[2] and "operational fronts" in table  # fewer bits for the same quality
    # the front of x265 spans 22-25 dB, the test 23-26.5 dB: the BD-rate averages over 23-25 dB
    assert row.split("|")[5].strip() == "23.00-25.00 dB"


def test_common_range_is_the_shared_quality_interval() -> None:
    from bench.bdrate import common_range

    assert common_range(PSNR, [30.0, 40.0]) == (30.0, 36.5)
    assert common_range(PSNR, [40.0, 42.0]) is None and common_range([], PSNR) is None


def test_a_curve_without_points_gives_a_reason_not_an_error() -> None:
    from bench.bdrate import bd_rate

    result = bd_rate([0.1, 0.2], [30.0, 32.0], [], [])
    assert result.value is None and "no points" in result.reason
