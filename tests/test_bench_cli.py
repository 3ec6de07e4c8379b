"""`dnerv bench` works from any folder once installed, or names exactly what is missing (issue 14 item 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnervcodec.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_an_installed_copy_runs_dnerv_bench_from_any_folder(tmp_path):
    """Install this checkout (not editable, no dependencies, no network) and run `dnerv bench --help` in an
    empty folder: the bench package must come with it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("dnervcodec", "bench"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(site), str(src)],
                             capture_output=True, text=True, timeout=300)
    if install.returncode != 0 and "setuptools" in install.stderr:
        pytest.skip(f"cannot build here: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr
    assert (site / "bench" / "rd.py").is_file() and not (site / "tests").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-c", "import sys; from dnervcodec.cli import main; "
                          "sys.exit(main(['bench', '--help']))"],
                         cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(site)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "python -m bench.rd" in run.stdout and str(site) in subprocess.run(
        [sys.executable, "-c", "import bench.rd; print(bench.rd.__file__)"], cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.parametrize("blocked,says", [
    ("matplotlib", "the benchmark needs matplotlib, which is not installed: pip install matplotlib"),
    ("bench", "the benchmark (package bench) is not installed: in a source checkout, pip install -e '.[bench]'"),
])
def test_a_missing_piece_is_named(monkeypatch, capsys, tmp_path, blocked, says):
    """`import bench.rd` fails on `blocked`, as on a machine without it: one line that says what to install."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    try:
        with monkeypatch.context() as m:
            for name in [n for n in sys.modules if n == "bench" or n.startswith("bench.")]:
                m.delitem(sys.modules, name)
            m.setitem(sys.modules, blocked, None)  # `import blocked` raises ModuleNotFoundError(name=blocked)
            code = main(["bench", "--quick", "--out", str(tmp_path / "rd")])
    finally:
        for name in set(sys.modules) - before:  # half-imported bench modules of this test
            if name == "bench" or name.startswith("bench."):
                del sys.modules[name]
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"dnerv bench: error: {says}") and "repository root" not in err
    assert list(tmp_path.iterdir()) == []
