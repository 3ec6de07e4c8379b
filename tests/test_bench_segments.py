"""bench.segments' scaling arithmetic: the N-machine prediction that docs/scaling.md takes from measured times."""

from __future__ import annotations

import json

import pytest

from bench.segments import main, makespan


def test_makespan_places_the_longest_jobs_first_on_the_freest_slot():
    assert makespan([4, 3, 3, 2], 1) == 12
    assert makespan([4, 3, 3, 2], 2) == 6  # 4+2 and 3+3
    assert makespan([4, 3, 3, 2], 8) == 4  # never below the longest job
    assert makespan([5, 5, 5], 2) == 10


def test_scaling_predicts_from_a_measured_run_and_agrees_with_it_for_its_own_slots(tmp_path, capsys):
    measured = tmp_path / "workers.json"
    measured.write_text(json.dumps({"results": [
        {"workers": 1, "wall_s": 110.0, "segment_s": [30.0, 25.0, 25.0, 25.0]},
        {"workers": 2, "wall_s": 70.0, "segment_s": [32.0, 30.0, 28.0, 28.0]}]}))
    out = tmp_path / "scaling.json"
    assert main(["scaling", "--measured", str(measured), "--machines", "1", "2", "4", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert rows[0]["predicted_wall_s"] == pytest.approx(70.0)  # 2 slots: the run it was measured from
    assert rows[1]["predicted_wall_s"] == pytest.approx(70.0 - 60.0 + 32.0)  # 4 slots: the longest segment
    assert rows[2]["predicted_wall_s"] == rows[1]["predicted_wall_s"]  # more slots than segments gain nothing
    assert rows[1]["speedup_vs_one_job_at_a_time"] == pytest.approx((118.0 + 10.0) / 42.0)
    assert "4 segments" in capsys.readouterr().out
