"""Results JSONs: CompressAI schema, sorted by bpp, atomic writes, resume."""

import json

import pytest

from bench.plot import bd_table, plot_rd, write_markdown
from bench.results import ResultsFile, load_results, make_doc, save_results, to_points
from dnervcodec.errors import ConfigError, InputError


def point(crf, bpp, psnr):
    return {"crf": crf, "bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": 0.9, "encode_s": 1.0, "decode_s": 0.1}


def test_schema_sorted_and_round_trip(tmp_path):
    doc = make_doc("x", [point(30, 0.05, 30.0), point(20, 0.2, 35.0), point(25, 0.1, 33.0)], "d", "crf", {"a": 1})
    path = save_results(tmp_path / "x.json", doc)
    raw = json.loads(path.read_text())
    assert set(raw) >= {"name", "description", "results"}
    assert set(raw["results"]) >= {"bpp", "psnr-rgb", "ms-ssim-rgb", "encode_s", "decode_s", "crf"}
    assert raw["results"]["bpp"] == [0.05, 0.1, 0.2] and raw["results"]["crf"] == [30, 25, 20]
    assert to_points(load_results(path)) == sorted(to_points(doc), key=lambda p: p["bpp"])
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp files left


def test_resume_skips_done_points_and_refuses_other_runs(tmp_path):
    f = ResultsFile(tmp_path / "x.json", "x", "crf", meta={"clip": "a"})
    f.add(point(30, 0.05, 30.0))
    f.add(point(20.0, 0.2, 35.0))
    g = ResultsFile(tmp_path / "x.json", "x", "crf", meta={"clip": "a"})
    assert g.done(30.0) and g.done(20) and not g.done(25)
    g.add(point(30, 0.06, 30.5))  # replaces, does not duplicate
    assert len(load_results(tmp_path / "x.json")["results"]["bpp"]) == 2
    with pytest.raises(ConfigError, match="different run"):
        ResultsFile(tmp_path / "x.json", "x", "crf", meta={"clip": "b"})


def test_bad_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        load_results(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text(json.dumps({"name": "x", "results": {"bpp": [1, 2], "psnr-rgb": [1]}}))
    with pytest.raises(InputError):
        load_results(tmp_path / "bad2.json")


def test_plots_and_markdown(tmp_path):
    a = make_doc("anchor", [point(c, b, p) for c, b, p in [(30, 0.05, 30.0), (25, 0.1, 33.0), (20, 0.2, 35.0)]])
    t = make_doc("test", [point(c, 0.8 * b, p) for c, b, p in [(30, 0.05, 30.0), (25, 0.1, 33.0), (20, 0.2, 35.0)]])
    far = make_doc("far", [point(1, 1.0, 45.0), point(2, 2.0, 48.0)])
    for metric in ("psnr-rgb", "ms-ssim-rgb"):
        png = plot_rd([a, t, far], tmp_path / f"{metric}.png", metric)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = bd_table(t, [a, far])
    assert "-20.0%" in table and "no overlap" in table
    md = write_markdown(tmp_path / "r.md", [a, t, far], test="test").read_text()
    assert "## anchor" in md and "| anchor |" in md and "0.0500" in md
