"""Segments: a clip cut into independently fitted segments, the budget split among them, each job at a fixed
thread count, and decoding that runs only the segments a frame range needs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from dnervcodec import codec
from dnervcodec.bitstream import read_container
from dnervcodec.cli import main
from dnervcodec.codec import EncodeConfig, decode, encode_video, parse
from dnervcodec.errors import FitInterrupted
from dnervcodec.fit import FitConfig
from dnervcodec.plan import CONTAINER_BITS, container_bits, plan_encode
from dnervcodec.segments import (SEGMENT_DIR, job_threads, make_jobs, run_segment, segment_plans, segment_seed,
                                 split_frames)
from dnervcodec.video import Video, write_video
from tests.conftest import InterruptAfter, moving_shapes, without_timings

QUICK = FitConfig(epochs=3, lr=5e-3)


@pytest.mark.parametrize("total, n, lengths", [
    (250, 66, [63, 63, 62, 62]),  # ceil(250/66) = 4 segments of near-equal length, longer ones first
    (250, 250, [250]), (250, 1000, [250]), (250, None, [250]),
    (10, 3, [3, 3, 2, 2]), (7, 1, [1] * 7), (1, 5, [1]),
])
def test_segments_are_balanced_and_tile_the_clip(total, n, lengths):
    spans = split_frames(total, n)
    assert [count for _, count in spans] == lengths
    assert [first for first, _ in spans] == list(np.cumsum([0, *lengths[:-1]]))


def test_segment_seeds_keep_the_config_seed_for_the_first_and_differ_for_the_rest():
    assert segment_seed(7, 0) == 7
    seeds = {segment_seed(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**32 for s in seeds)
    assert segment_seed(2**32 - 1, 3) == segment_seed(2**32 - 1, 3)


def test_bpp_applies_per_segment_and_size_is_split_by_frames():
    by_bpp = EncodeConfig(bpp=0.1, rd_epochs=1, value_bits=6)
    whole = plan_encode(by_bpp, 132, 160, 320)
    part = plan_encode(by_bpp, 33, 160, 320, clip_frames=132)
    assert part.target_bits == pytest.approx(whole.target_bits / 4)  # the same bpp over a quarter of the pixels
    assert part.share == 0.25 and whole.share == 1.0
    by_size = EncodeConfig(size="400k", rd_epochs=1, value_bits=6)
    assert plan_encode(by_size, 33, 160, 320, clip_frames=132).target_bits == pytest.approx(8 * 100_000)
    assert plan_encode(by_size, 132, 160, 320).target_bits == 8 * 400_000
    # the 0.3.0 pipeline counts stored values: a --size budget is split the same way
    values = EncodeConfig(size="400k")
    assert plan_encode(values, 33, 160, 320, clip_frames=132).sizing.budget == 100_000
    # every segment pays its own framing, the file's is shared; one segment pays exactly what a file did
    assert container_bits(1.0) == CONTAINER_BITS
    assert sum(container_bits(0.25) for _ in range(4)) > CONTAINER_BITS


def test_segments_of_a_file_share_one_coded_size():
    # At 0.1 bpp 144x176 pads to a coarser layout's size, which depends on the segment's length: alone, 13
    # frames would pad to 192x192 and 12 to 160x192. The file has one coded size: the first segment's.
    cfg = EncodeConfig(bpp=0.1, rd_epochs=1, value_bits=6, segment_frames=13)
    assert plan_encode(cfg, 13, 144, 176, clip_frames=25).coded == (192, 192)
    assert plan_encode(cfg, 12, 144, 176, clip_frames=25).coded == (160, 192)
    plans = segment_plans(cfg, 25, 144, 176)
    assert [p.coded for p in plans] == [(192, 192), (192, 192)]
    assert plans[1].sizing.config.decoder.height == 192 and plans[1].sizing.diff_stride == 64
    assert {j.coded for j in make_jobs(np.zeros((25, 144, 176, 3), np.uint8), cfg)} == {(192, 192)}


def test_jobs_get_their_own_frames_seed_and_checkpoint_folder(tmp_path):
    frames = moving_shapes(10, 32, 64)
    cfg = EncodeConfig(size="20k", fit=replace(QUICK, seed=5), segment_frames=4)
    jobs = make_jobs(frames, cfg, tmp_path / "run")
    assert [(j.first_frame, len(j.frames)) for j in jobs] == [(0, 4), (4, 3), (7, 3)]
    assert np.array_equal(jobs[1].frames, frames[4:7])
    assert [j.cfg.fit.seed for j in jobs] == [segment_seed(5, i) for i in range(3)]
    assert [j.run_dir for j in jobs] == [str(tmp_path / "run" / SEGMENT_DIR.format(i)) for i in range(3)]
    assert {j.threads for j in jobs} == {1} and all(j.coded == (32, 64) for j in jobs)
    single = make_jobs(frames, replace(cfg, segment_frames=None), tmp_path / "run")
    assert len(single) == 1 and single[0].run_dir == str(tmp_path / "run") and single[0].coded is None
    assert single[0].cfg == replace(cfg, segment_frames=None)  # the whole clip keeps the config's seed


def test_a_job_runs_at_its_own_thread_count_and_restores_the_callers(tmp_path):
    assert job_threads(EncodeConfig(), 1) == torch.get_num_threads()  # a whole-clip encode, as before
    assert job_threads(EncodeConfig(), 3) == 1
    assert job_threads(EncodeConfig(threads=3), 3) == 3
    cfg = EncodeConfig(size="6k", fit=replace(QUICK, epochs=1), device="cpu", segment_frames=2)
    job = make_jobs(moving_shapes(4, 32, 64), cfg)[0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        result = run_segment(job)
        assert result.threads == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def segmented():
    """A 10-frame clip of an odd size in 3 segments: (frames, report)."""
    frames = moving_shapes(10, 27, 45, seed=3)
    cfg = EncodeConfig(bpp=2.0, fit=QUICK, rd_epochs=1, value_bits=6, device="cpu", segment_frames=4)
    return frames, encode_video(Video(frames, 25.0, (27, 45)), cfg, progress=False)


def test_a_segmented_file_decodes_to_the_source_size_and_frame_count(segmented):
    frames, report = segmented
    info = parse(report.data)
    assert [(s.first_frame, s.frames) for s in info.segments] == [(0, 4), (4, 3), (7, 3)]
    decoded, header = decode(report.data)
    assert decoded.shape == frames.shape
    assert header["coding"]["segment_frames"] == 4 and header["video"]["coded_size"] == [32, 48]
    assert header["coding"]["budget"] == sum(s.sizing.budget for s in report.segments)
    # each segment has its own decoder, fitted with its own seed
    weights = [read_container(report.data).segments[i].tensors["w.head.weight"] for i in range(3)]
    assert weights[0] != weights[1]
    rd = json.loads(read_container(report.data).ancillary["rd"])
    assert len(rd["lambda"]) == 3 and rd["predicted_bits"] == pytest.approx(report.predicted_bits)
    assert report.predicted_bits / 8 == pytest.approx(len(report.data), rel=0.2)


def test_a_frame_range_decodes_only_the_segments_it_needs(segmented, monkeypatch):
    _, report = segmented
    full, _ = decode(report.data)
    decoded = []
    real = codec.decode_segment

    def counting(seg):
        decoded.append(seg.meta["first_frame"])
        return real(seg)

    monkeypatch.setattr(codec, "decode_segment", counting)
    assert parse(report.data) and decoded == []  # parsing validates every tensor but decodes none
    part, _ = decode(report.data, start=5, num_frames=2)
    assert decoded == [4] and np.array_equal(part, full[5:7])
    decoded.clear()
    part, _ = decode(report.data, start=3, num_frames=4)
    assert decoded == [0, 4] and np.array_equal(part, full[3:7])


def test_info_lists_the_segments(segmented, tmp_path, capsys):
    _, report = segmented
    path = tmp_path / "clip.dnerv"
    path.write_bytes(report.data)
    assert main(["info", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["segments"]
    assert [(s["first_frame"], s["frames"]) for s in listed] == [(0, 4), (4, 3), (7, 3)]
    assert all(s["bytes"] > 0 and s["decoder_params"] > 0 for s in listed)
    assert sum(s["bytes"] for s in listed) < len(report.data)
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"segment 1: frames 4..6 (3), {listed[1]['bytes']} bytes, decoder {listed[1]['decoder_params']} params" in text


def test_the_cli_encodes_segments_and_says_so(tmp_path, capsys):
    src = write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64))
    out = tmp_path / "clip.dnerv"
    assert main(["encode", str(src), "-o", str(out), "--segment-frames", "3", "--size", "12k", "--epochs", "2",
                 "--quiet", "--device", "cpu"]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "6 frames 32x64" in stdout and "in 2 segments" in stdout
    assert [s.frames for s in parse(out.read_bytes()).segments] == [3, 3]
    assert not (tmp_path / "clip.dnerv.run").exists()


def test_an_interrupted_segmented_encode_resumes_to_the_same_file(tmp_path):
    video = Video(moving_shapes(6, 32, 64), 25.0, (32, 64))
    cfg = EncodeConfig(size="12k", fit=replace(QUICK, epochs=4), rd_epochs=1, value_bits=6, device="cpu",
                       segment_frames=3)
    straight = encode_video(video, cfg, progress=False)
    run = tmp_path / "run"
    with pytest.raises(FitInterrupted):  # Ctrl-C pressed in the second segment's fit
        encode_video(video, cfg, run, progress=InterruptAfter(20, once=True))
    assert (run / "segment-001" / "checkpoint.pt").exists()
    resumed = encode_video(video, cfg, run, resume=True, progress=False)
    assert without_timings(resumed.data) == without_timings(straight.data)
