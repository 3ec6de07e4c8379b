"""bench/denoise_tables.py: a table's runs on a tiny clip, its files, and tables with rows not yet measured."""

from __future__ import annotations

import json

import pytest
import torch

from bench import denoise_tables as tables
from bench.denoise_tables import Run
from dnervcodec.video import write_video
from tests.conftest import moving_shapes

TINY = ['stbn={"width": 8, "blocks": 1, "iters": 3, "crop": 16, "clip_len": 3}']


@pytest.fixture(autouse=True)
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_poisson_table_end_to_end_resumes_and_writes_its_data(tmp_path, monkeypatch, capsys) -> None:
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(4, 24, 32), 25.0)
    other = write_video(tmp_path / "other.mkv", moving_shapes(4, 24, 32, seed=5), 25.0)
    runs = [Run(f"pg-{s}", str(clip), None, ("noisy", "nlm-transfer", "stbn"), frames=4, noise=f"pg-{s}", blind=True,
                nlm_tune=(str(other), None)) for s in ("weak", "strong")]
    monkeypatch.setitem(tables.RUNS, "poisson", runs)
    monkeypatch.setattr(tables.bench, "NLM_TRANSFER_STRENGTHS", (0.5, 1.0))
    argv = ["poisson", "--out", str(tmp_path / "runs"), "--options", TINY[0], "--no-progress"]
    assert tables.main(argv) == 0
    text = capsys.readouterr().out
    data = tmp_path / "runs" / "poisson"  # a run with --options: not in docs/data
    raw = json.loads((data / "denoise-poisson.json").read_text())
    assert raw["table"] == "poisson" and raw["command"].startswith("python -m bench.denoise_tables poisson")
    assert set(raw["runs"]) == {"pg-weak", "pg-strong"}
    lines = [line for line in text.splitlines() if line.startswith("| weak") or line.startswith("| strong")]
    assert len(lines) == 2
    weak = raw["runs"]["pg-weak"]
    assert f"| {weak['meta']['sigma']:.1f} | {weak['meta']['estimate']['sigma']:.1f} |" in lines[0]
    assert "not yet measured" in lines[0]  # no vdp or tuned nlm row in this tiny table
    assert (data / "denoise-poisson.md").read_text().count("| weak") == 1
    # rerun: nothing measured again
    from dnervcodec.denoise.stbn import STBN

    monkeypatch.setattr(STBN, "denoise", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured again")))
    assert tables.main(argv) == 0


def test_tables_render_spreads_and_missing_rows() -> None:
    def doc(rows: dict[str, float]) -> dict:
        names = list(rows)
        return {"name": "denoise", "results": {"row": names, "psnr-rgb": [rows[n] for n in names],
                                               "status": ["ok"] * len(names), "ms-ssim-rgb": [0.9] * len(names),
                                               "cpu_s": [600.0] * len(names)}}

    docs = {f"seed{i}": doc({"noisy": 19.0, "vdp": 29.0 + i / 10, "vdp-single-scale": 28.9}) for i in range(3)}
    text = tables.pyramid_table(docs)
    assert "29.10 +- 0.10 (n=3)" in text and "28.90 +- 0.00 (n=3)" in text
    assert "| pyramid - single (paired) | +0.10 | +0.20 | +0.30 | 0.20 +- 0.10 (n=3) |" in text
    text = tables.rollout_table({"bunny": doc({"noisy": 19.0, "vdp-free": 29.0})})
    assert "29.00 / 0.9000 / 10.0" in text and "not yet measured" in text
    assert "| +" not in tables.propagation_table({"bikes": doc({"noisy": 19.0})})
