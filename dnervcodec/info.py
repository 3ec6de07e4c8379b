"""Describe a .dnerv file: format version, video, each segment (frames, bytes, decoder), bytes of each part,
bpp, stage timings."""

from __future__ import annotations

import json
from pathlib import Path

from .bitstream import Container, chunk_sizes, file_version, parse_json, segment_symbols
from .compress.entropy import information_bits
from .codec import parse
from .errors import BitstreamError, InputError
from .metrics import bpp
from .models.cost import DecodeLimits
from .models.dnerv import decoder_params
from .wording import duration, plural

PARTS = ("decoder weights", "content embeddings", "diff embeddings", "header and container", "ancillary")


def _part(chunk_type: str, name: str) -> str:
    if chunk_type == "TNSR":
        if name.startswith("w."):
            return "decoder weights"
        return "diff embeddings" if name == "e.diff" else "content embeddings"
    return "ancillary" if chunk_type[0].islower() else "header and container"


def _parts_bytes(data: bytes, container: Container) -> dict[str, int]:
    """Bytes of each part, summing to the file size. A format-3 segment's shared stream (CODE chunk) is split
    among its tensors by their information bits (what the range coder spent on each); its framing and the
    coder's final flush count as container."""
    parts = dict.fromkeys(PARTS, 0.0)
    streams = iter(container.segments)
    for chunk_type, name, size in chunk_sizes(data):
        if chunk_type != "CODE":
            parts[_part(chunk_type, name)] += size
            continue
        seg = next(streams)
        symbols = segment_symbols(seg)
        for tensor_name, t in seg.tensors.items():
            share = information_bits(t.coded, symbols[tensor_name]) / 8
            parts[_part("TNSR", tensor_name)] += share
            size -= share
        parts["header and container"] += size
    out = {k: round(v) for k, v in parts.items()}
    out["header and container"] += len(data) - sum(out.values())
    return out


def _segment_bytes(data: bytes) -> list[int]:
    """Bytes of each segment's own chunks (its SEGM, TNSR and CODE chunks, framing included), in order."""
    sizes: list[int] = []
    for chunk_type, _, size in chunk_sizes(data):
        if chunk_type == "SEGM":
            sizes.append(0)
        if chunk_type in ("SEGM", "TNSR", "CODE") and sizes:
            sizes[-1] += size
    return sizes


def describe(path: Path, limits: DecodeLimits | None = None) -> dict:
    """Everything `dnerv info` prints, as a dict (validated by a full parse of the file, the same as decode's).

    Ancillary payloads are shown as JSON when they pass the header's bounded JSON parser, else by size.
    """
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    return describe_bytes(path.read_bytes(), str(path), limits)


def describe_bytes(data: bytes, name: str, limits: DecodeLimits | None = None) -> dict:
    """`describe` of a file's bytes; `name` is what the report calls the file."""
    info = parse(data, limits)
    parts = _parts_bytes(data, info.container)
    video = info.video
    ancillary: dict[str, object] = {}
    for key, blob in info.ancillary.items():
        try:
            ancillary[key] = parse_json(blob, f"ancillary {key!r}")
        except BitstreamError:
            ancillary[key] = f"<{len(blob)} bytes>"
    return {
        "file": name,
        "bytes": len(data),
        "format_version": ".".join(map(str, file_version(data))),
        "encoder": info.header.get("encoder", "?"),
        "video": video,
        "coding": info.header.get("coding", {}),
        "bpp": bpp(len(data), video["frames"], video["height"], video["width"]),
        "parts_bytes": parts,
        "segments": [
            {"first_frame": s.first_frame, "frames": s.frames, "bytes": n, "decoder": s.decoder.to_dict(),
             "decoder_params": decoder_params(s.decoder), "decode_gflops_per_frame": s.cost.gflops,
             "decode_activation_bytes_per_frame": s.cost.peak_bytes}
            for s, n in zip(info.segments, _segment_bytes(data))
        ],
        "ancillary": ancillary,
    }


def format_info(info: dict) -> str:
    """The text of `dnerv info`. Header fields beyond what decoding checks (source size, start, coding,
    ancillary payloads) come from the file as written: each is shown only in the form it is expected in."""
    v = info["video"]
    source = v.get("source_size")
    extra = []
    if isinstance(source, list) and len(source) == 2 and all(_is_int(x) for x in source):
        extra.append(f"source {source[0]}x{source[1]}")
    extra.append(f"first frame {v['start'] if _is_int(v.get('start')) else 0}")
    coded = v.get("coded_size")  # checked by parse: covers the output when present
    if isinstance(coded, list) and coded != [v["height"], v["width"]]:
        extra.append(f"coded {coded[0]}x{coded[1]}, cropped on decode")
    rate = v.get("fps_rational")  # checked by parse: [num, den] when present
    fps_text = f"{v['fps']:g} fps" + (f" = {rate[0]}/{rate[1]}" if isinstance(rate, list) and rate[1] != 1 else "")
    coding = info["coding"]
    coding_text = (", ".join(f"{k} {val}" for k, val in coding.items()) if isinstance(coding, dict)
                   else json.dumps(coding))
    lines = [
        f"{info['file']}: dnerv format {info['format_version']}, written by {info['encoder']}",
        f"video: {plural(v['frames'], 'frame')} {v['height']}x{v['width']} at {fps_text} ({', '.join(extra)})",
        f"coding: {coding_text}",
        f"size: {info['bytes']} bytes, {info['bpp']:.4f} bpp",
    ]
    for part, n in info["parts_bytes"].items():
        lines.append(f"  {part:<22}{n:>10} bytes  {100 * n / info['bytes']:5.1f}%")
    for i, s in enumerate(info["segments"]):
        d = s["decoder"]
        diff = f"diff {d['diff_ch']}ch at 1/{d['diff_stride']}" if d["diff_ch"] else "no diff stream"
        lines.append(
            f"segment {i}: frames {s['first_frame']}..{s['first_frame'] + s['frames'] - 1} ({s['frames']}), "
            f"{s['bytes']} bytes, decoder "
            f"{s['decoder_params']} params, strides {d['strides']}, widths {d['lift_width']}->{d['widths']}, {diff}; "
            f"decoding needs {s['decode_gflops_per_frame']:.3g} GFLOPs and "
            f"{s['decode_activation_bytes_per_frame'] / 2**20:.3g} MiB of activations per frame"
        )
    for key, value in info["ancillary"].items():
        if key == "timings" and isinstance(value, dict):
            stages = ", ".join(f"{k.replace('_', ' ')} {_seconds(v)}" for k, v in value.items())
            lines.append(f"encode stages: {stages}")
        elif key == "denoise" and isinstance(value, dict):
            sigma = value.get("sigma")
            lines.append(f"denoised before encoding: {value.get('method')}, sigma "
                         f"{'estimated' if sigma is None else sigma}, {_seconds(value.get('seconds'))}")
        else:
            lines.append(f"{key}: {json.dumps(value) if not isinstance(value, str) else value}")
    return "\n".join(lines)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e12:
        return "?"
    return duration(value)
