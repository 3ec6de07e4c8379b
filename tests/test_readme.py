"""CI must run exactly what the README tells a newcomer to type."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("```bash") + 1
    return lines[start : start + 2]


def test_readme_opens_with_install_and_main_job_then_install_and_tests():
    main_job, tests = readme_commands()
    assert main_job.startswith("pip install -e ") and "dnerv encode sample:bunny" in main_job
    assert tests.startswith("pip install -e ") and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
