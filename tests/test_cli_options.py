"""Every option is checked when the command line is read: a bad value is one line on stderr and exit 2, fast,
before any input is opened or any file written. And --help tells the truth: ranges, defaults, help texts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnervcodec import __version__
from dnervcodec.cli import DENOISE_ITERS, build_parser, main
from dnervcodec.models.strides import split_stride
from dnervcodec.options import DIFF_STRIDES
from dnervcodec.video import write_video
from tests.conftest import moving_shapes

# (command, extra arguments, text the error must contain). Every case gets a real clip as input, so an option
# that slipped through would start real work and fail the time and no-file checks.
INVALID = [
    ("fit", ["--epochs", "0"], "--epochs: 0 is outside >= 1"),
    ("fit", ["--epochs", "2.5"], "--epochs: '2.5' is not an integer"),
    ("fit", ["--lr", "inf"], "--lr: inf is not a finite number"),
    ("fit", ["--lr", "nan"], "--lr: nan is not a finite number"),
    ("fit", ["--lr", "0"], "--lr: 0 is outside > 0"),
    ("fit", ["--lr=-1e-3"], "--lr: -1e-3 is outside > 0"),
    ("fit", ["--batch-size", "0"], "--batch-size: 0 is outside >= 1"),
    ("fit", ["--loss", "l3"], "--loss: invalid choice"),
    ("fit", ["--seed", "-1"], "--seed: -1 is outside 0..4294967295"),
    ("fit", ["--checkpoint-minutes", "-1"], "--checkpoint-minutes: -1 is outside > 0"),
    ("fit", ["--checkpoint-minutes", "0"], "--checkpoint-minutes: 0 is outside > 0"),
    ("fit", ["--diff-stride", "0"], "--diff-stride: 0 is not a product"),
    ("fit", ["--diff-stride", "7"], "nearest that work: 5, 6, 8"),
    ("fit", ["--size", "lots"], "--size: budget 'lots' is not a number"),
    ("fit", ["--size", "10"], "--size: budget '10' is out of range"),
    ("fit", ["--bpp", "0"], "--bpp: 0 is outside (0, 64)"),
    ("fit", ["--size", "85k", "--bpp", "0.1"], "not allowed with argument --size"),
    ("fit", ["--resolution", "tall"], "--resolution: resolution 'tall' is not HEIGHTxWIDTH"),
    ("fit", ["--resolution", "0x320"], "--resolution: resolution '0x320' is out of range"),
    ("fit", ["--start", "-1"], "--start: -1 is outside >= 0"),
    ("fit", ["--frames", "0"], "--frames: 0 is outside >= 1"),
    ("fit", ["--device", "gpu"], "--device: 'gpu' is not auto, cpu, cuda or cuda:N"),
    ("fit", ["--resume", "--restart"], "--restart: not allowed with argument --resume"),
    ("fit", ["--bits", "8"], "unrecognized arguments: --bits 8"),
    ("encode", ["--bits", "0"], "--bits: 0 is outside 2..16"),
    ("encode", ["--bits", "1"], "--bits: 1 is outside 2..16"),
    ("encode", ["--bits", "17"], "--bits: 17 is outside 2..16"),
    ("encode", ["--prune", "1.5"], "--prune: 1.5 is outside [0, 1)"),
    ("encode", ["--prune", "1"], "--prune: 1 is outside [0, 1)"),
    ("encode", ["--prune", "-0.2"], "--prune: -0.2 is outside [0, 1)"),
    ("encode", ["--prune-epochs", "-1"], "--prune-epochs: -1 is outside >= 0"),
    ("encode", ["--prune-epochs", "3"], "--prune-epochs needs --prune above 0"),
    ("encode", ["--qat-epochs", "-3"], "--qat-epochs: -3 is outside >= 0"),
    ("encode", ["--qat-lr", "1e-4"], "--qat-lr needs --qat-epochs above 0"),
    ("encode", ["--qat-epochs", "2", "--qat-lr", "-1"], "--qat-lr: -1 is outside > 0"),
    ("encode", ["--denoise", "stbn", "--sigma", "-5"], "--sigma: -5 is outside (0, 255]"),
    ("encode", ["--denoise", "stbn", "--sigma", "1e9"], "--sigma: 1e9 is outside (0, 255]"),
    ("encode", ["--denoise", "nlm", "--sigma", "0"], "--sigma: 0 is outside (0, 255]"),
    ("encode", ["--sigma", "15"], "--sigma needs --denoise"),
    ("encode", ["--denoise", "vdp", "--denoise-iters", "0"], "--denoise-iters: 0 is outside >= 1"),
    ("encode", ["--denoise", "nlm", "--denoise-iters", "5"], "nlm is not trained"),
    ("encode", ["--denoise", "bm3d"], "--denoise: invalid choice"),
    ("encode", ["--epochs", "-5"], "--epochs: -5 is outside >= 1"),
    ("encode", ["--time", "0"], "--time: '0' is outside (0 s, 7 days]"),
    ("encode", ["--time", "0s"], "--time: '0s' is outside (0 s, 7 days]"),
    ("encode", ["--time=-5m"], "--time: '-5m' is not a duration like 90s, 5m, 1h30m or 1.5h"),
    ("encode", ["--time", "soon"], "--time: 'soon' is not a duration like 90s, 5m, 1h30m or 1.5h"),
    ("encode", ["--time", "200h"], "--time: '200h' is outside (0 s, 7 days]"),
    ("encode", ["--time", "5m", "--epochs", "10"], "--epochs: not allowed with argument --time"),
    ("encode", ["--epochs", "10", "--preset", "fast"], "--preset: not allowed with argument --epochs"),
    ("encode", ["--preset", "turbo"], "--preset: invalid choice: 'turbo'"),
    ("encode", ["--time", "5m", "--rd-epochs", "3"], "--rd-epochs: --time plans the epochs of every stage"),
    ("encode", ["--time", "5m", "--prune", "0.1", "--prune-epochs", "2"], "--prune-epochs: --time plans the epochs"),
    ("encode", ["--time", "5m", "--bits", "6", "--qat-epochs", "2"], "--qat-epochs: --time plans the epochs"),
    ("fit", ["--time", "1x"], "--time: '1x' is not a duration"),
    ("fit", ["--time", "5m", "--preset", "slow"], "--preset: not allowed with argument --time"),
    ("encode", ["--segment-frames", "0"], "--segment-frames: 0 is outside >= 1"),
    ("encode", ["--segment-frames", "-4"], "--segment-frames: -4 is outside >= 1"),
    ("encode", ["--workers", "0"], "--workers: 0 is outside >= 1"),
    ("encode", ["--threads", "0"], "--threads: 0 is outside >= 1"),
    ("encode", ["--ray", "127.0.0.1:1"], "--ray: cannot reach a Ray cluster at 127.0.0.1:1 (connection refused)"),
    ("encode", ["--ray", "nowhere"], "--ray: 'nowhere' is not auto or a Ray head's HOST:PORT"),
    ("encode", ["--ray", "auto", "--workers", "2"], "--workers: not allowed with argument --ray"),
    ("encode", ["--time", "5m", "--segment-frames", "10"], "--segment-frames: --time does not plan segmented encodes yet"),
    ("denoise", ["--method", "bm3d"], "--method: invalid choice"),
    ("denoise", ["--sigma", "-5"], "--sigma: -5 is outside (0, 255]"),
    ("denoise", ["--iters", "0"], "--iters: 0 is outside >= 1"),
    ("denoise", ["--method", "nlm", "--iters", "10"], "nlm is not trained"),
    ("denoise", ["--seed", "x"], "--seed: 'x' is not an integer"),
    ("denoise", ["--device", "tpu"], "--device: 'tpu' is not auto"),
    ("decode", ["--start", "-1"], "--start: -1 is outside >= 0"),
    ("decode", ["--frames", "0"], "--frames: 0 is outside >= 1"),
    ("decode", ["--device", "tpu"], "--device: 'tpu' is not auto"),
    ("info", ["--bits", "8"], "unrecognized arguments"),
]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", moving_shapes(6, 32, 64))


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def argv(command: str, extra: list[str], clip: Path, out: Path) -> list[str]:
    if command in ("fit", "encode", "denoise"):
        target = {"fit": "run", "encode": "out.dnerv", "denoise": "out.mkv"}[command]
        return [command, str(clip), "-o", str(out / target), *extra]
    if command == "decode":
        return [command, str(clip), "-o", str(out / "out.mkv"), *extra]
    return [command, str(clip), *extra]


@pytest.mark.parametrize("command,extra,expected", INVALID, ids=[" ".join([c, *e]) for c, e, _ in INVALID])
def test_an_invalid_value_is_one_line_exit_2_at_once_and_writes_nothing(command, extra, expected, clip_file,
                                                                        tmp_path, capsys):
    before = files_under(tmp_path)
    t0 = time.perf_counter()
    code = main(argv(command, extra, clip_file, tmp_path))
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dnerv {command}: error: "), err
    assert expected in lines[0]
    assert out == ""
    assert seconds < 2
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("args,expected", [
    ([], "dnerv: error: the following arguments are required: COMMAND"),
    (["squash"], "dnerv: error: argument COMMAND: invalid choice: 'squash'"),
    (["encode"], "dnerv encode: error: the following arguments are required: input, -o/--output"),
])
def test_a_missing_or_unknown_command_is_one_line(args, expected, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == expected or (err.count("\n") == 1 and err.startswith(expected)), err


def test_a_cold_start_rejects_a_bad_value_without_loading_torch(clip_file, tmp_path):
    """The real process: the check needs no torch, no PyAV, no input, so it is fast even on a busy machine."""
    code = ("import sys; from dnervcodec.cli import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules, 'av' in sys.modules); sys.exit(rc)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "encode", str(clip_file), "-o", str(tmp_path / "x.dnerv"),
                           "--bits", "17"], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    assert time.perf_counter() - t0 < 2
    assert proc.returncode == 2
    assert proc.stdout.split() == ["False", "False"]
    assert proc.stderr == "dnerv encode: error: argument --bits: 17 is outside 2..16\n"
    assert list(tmp_path.iterdir()) == []


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dnerv {__version__}"


def subcommands() -> dict:
    parser = build_parser()
    return parser.get_default("_commands")


def test_every_option_has_help_and_every_default_is_shown():
    for name, sub in subcommands().items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help text"
            takes_value = action.nargs != 0
            if takes_value and not action.required:
                shown = sub.formatter_class("x")._get_help_string(action)
                assert "default:" in shown, f"{name} {action.option_strings[0]} shows no default"
        assert "(default: None)" not in text and "min at" not in text and " here" not in text, name


@pytest.mark.parametrize("command,option,text", [
    ("encode", "--bits", "2..16 (default: 8)"),
    ("encode", "--prune", "[0, 1)"),
    ("encode", "--qat-epochs", ">= 0 (default: 0)"),
    ("encode", "--sigma", "(0, 255]"),
    ("encode", "--segment-frames", ">= 1 (default: the whole clip, one segment)"),
    ("encode", "--workers", ">= 1 (default: 1)"),
    ("encode", "--ray", "(default: no Ray)"),
    ("encode", "--threads", "(default: 1 with several segments, else torch's own)"),
    ("fit", "--epochs", ">= 1 (default: 120; the paper uses 300)"),
    ("fit", "--preset", "fast 40, medium 120, slow 240, paper 300 (the DNeRV paper's count)"),
    ("encode", "--time", "90s, 20m, 1h30m or 1.5h, up to 7 days"),
    ("fit", "--lr", "> 0 (default: 0.003)"),
    ("fit", "--checkpoint-minutes", "> 0 (default: 5.0)"),
    ("fit", "--batch-size", ">= 1 (default: 1)"),
    ("fit", "--seed", "(default: 0)"),
    ("fit", "--loss", "(default: l2)"),
    ("denoise", "--method", "(default: stbn)"),
    ("denoise", "--iters", "(default: stbn 1500, vdp 3000)"),
    ("encode", "--denoise-iters", "(default: stbn 1500, vdp 3000)"),
])
def test_help_states_ranges_and_defaults(command, option, text):
    sub = subcommands()[command]
    action = next(a for a in sub._actions if option in a.option_strings)
    help_text = sub.formatter_class("x")._get_help_string(action) % {"default": action.default}
    assert text in help_text, help_text


def test_denoise_iteration_defaults_in_help_are_the_denoisers_own():
    from dnervcodec.denoise.stbn import STBN
    from dnervcodec.denoise.vdp import VDP

    assert DENOISE_ITERS == f"stbn {STBN().iters}, vdp {VDP().iters}"


def test_diff_strides_accepted_are_the_ones_the_model_can_build():
    assert DIFF_STRIDES == tuple(n for n in range(2, 65) if split_stride(n, 3))


def test_readme_lists_every_option_as_help_prints_it():
    from dnervcodec.cli import options_markdown

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert options_markdown() in readme, "README's option table is stale; paste the output of options_markdown()"
    for name, sub in subcommands().items():  # and every default in it is the parser's
        for action in sub._actions:
            if action.option_strings and action.nargs != 0 and action.default is not None and action.dest != "help":
                assert f"(default: {action.default}" in readme, (name, action.dest)


@pytest.mark.parametrize("extra,expected", [
    (["--threads", "0"], "--threads: 0 is outside >= 1"),
    (["--frames", "0"], "--frames: 0 is outside >= 1"),
    (["--start", "-2"], "--start: -2 is outside >= 0"),
    (["--crfs", "20", "60"], "--crfs: 60 is outside [0, 51]"),
    (["--budgets", "0"], "--budgets: 0 is outside (0, 64)"),
    (["--dnerv-epochs", "0"], "--dnerv-epochs: 0 is outside >= 1"),
    (["--resolution", "wide"], "--resolution: resolution 'wide' is not HEIGHTxWIDTH"),
    (["--quick", "--full"], "--full: not allowed with argument --quick"),
])
def test_bench_checks_its_options_the_same_way(extra, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])  # `dnerv bench` runs from the source checkout
    import bench.rd  # noqa: F401  (importing matplotlib and the baselines is not work the check should skip)

    t0 = time.perf_counter()
    code = main(["bench", "--out", str(tmp_path / "rd"), *extra])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("python -m bench.rd: error: argument ") and expected in err, err
    assert seconds < 2 and list(tmp_path.iterdir()) == []
