"""Results files: one JSON per codec configuration, in CompressAI's results schema.

    {
      "name": "x265-medium-444",
      "description": "libx265 preset medium, yuv444p, BT.709 limited range, ...",
      "param": "crf",                      # which key of "results" identifies a point (for resuming)
      "meta": {...},                       # clip, resolution, frames, codec config, versions
      "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], "encode_s": [...],
                  "decode_s": [...], "crf": [...], ...}
    }

Every list in "results" has one entry per point, and points are sorted by bpp. CompressAI's plot tool
reads "name" and "results" and ignores the extra keys. Tables that are not rate-distortion curves (the
denoise benchmark's rows) use the same files with their own `columns`: without a "bpp" column, points
keep the order they were added in and only "psnr-rgb" is required. Files are written atomically (temp file + rename),
so a benchmark killed mid-write leaves the previous version intact, and :class:`ResultsFile` lets a rerun
skip the points already measured.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from dnervcodec.errors import ConfigError, InputError
from dnervcodec.video import write_bytes_atomic

REQUIRED_METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encode_s", "decode_s")


def param_key(value: Any) -> Any:
    """A point's parameter value in a form that compares equal across a JSON round trip (32 == 32.0)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9)
    return str(value)


def to_points(doc: dict) -> list[dict]:
    """{"results": {key: [v0, v1, ...]}} -> [{key: v0, ...}, {key: v1, ...}]."""
    results = doc.get("results", {})
    lengths = {len(v) for v in results.values()}
    if len(lengths) > 1:
        raise InputError(f"results of '{doc.get('name')}' have lists of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    return [{k: v[i] for k, v in results.items()} for i in range(n)]


def make_doc(
    name: str, points: Iterable[dict], description: str = "", param: str | None = None, meta: dict | None = None,
    columns: Sequence[str] = REQUIRED_METRICS,
) -> dict:
    """Build a results document from per-point dicts (missing values become null).

    `columns` come first; points are sorted by bpp when "bpp" is one of them, else kept in order.
    """
    points = sorted(points, key=lambda p: p["bpp"]) if "bpp" in columns else list(points)
    keys: list[str] = list(columns)
    for p in points:
        keys += [k for k in p if k not in keys]
    doc: dict[str, Any] = {"name": name, "description": description}
    if param is not None:
        doc["param"] = param
    if meta is not None:
        doc["meta"] = meta
    doc["results"] = {k: [_clean(p.get(k)) for p in points] for k in keys}
    return doc


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no inf/nan; e.g. PSNR of a lossless point
    if hasattr(v, "item"):  # numpy scalar
        return _clean(v.item())
    return v


def validate(doc: Any, where: str = "results", required: Sequence[str] = ("bpp", "psnr-rgb")) -> dict:
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("results"), dict):
        raise InputError(f"{where}: not a results file (needs 'name' and a 'results' object)")
    for k in required:
        if k not in doc["results"]:
            raise InputError(f"{where}: results have no '{k}' list")
    for k, v in doc["results"].items():
        if not isinstance(v, list):
            raise InputError(f"{where}: results['{k}'] is not a list")
    to_points(doc)  # equal lengths
    return doc


def _required(columns: Sequence[str]) -> tuple[str, ...]:
    return ("bpp", "psnr-rgb") if "bpp" in columns else ("psnr-rgb",)


def load_results(path: str | os.PathLike, columns: Sequence[str] = REQUIRED_METRICS) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    return validate(doc, str(path), _required(columns))


def save_results(path: str | os.PathLike, doc: dict, columns: Sequence[str] = REQUIRED_METRICS) -> Path:
    """Write a results document atomically, points sorted by bpp (when `columns` have bpp)."""
    validate(doc, str(path), _required(columns))
    doc = make_doc(doc["name"], to_points(doc), doc.get("description", ""), doc.get("param"), doc.get("meta"),
                   columns)
    path = Path(path)
    write_bytes_atomic(path, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
    return path


class ResultsFile:
    """The results of one codec configuration on one clip, saved after every point; resumable.

    Opening an existing file whose ``meta`` differs from the one given (another clip, resolution or codec
    setting) raises ConfigError rather than mixing incomparable points.
    """

    def __init__(
        self, path: str | os.PathLike, name: str, param: str, description: str = "", meta: dict | None = None,
        columns: Sequence[str] = REQUIRED_METRICS, strict: bool = True,
    ) -> None:
        """`strict=False` (reports that add no points) adopts the saved description and meta instead of
        refusing a file written by another version or setting."""
        self.path = Path(path)
        self.name, self.param, self.description = name, param, description
        self.columns = tuple(columns)
        self.meta = json.loads(json.dumps(meta or {}))  # as it will read back from JSON
        self.points: list[dict] = []
        if self.path.exists():
            doc = load_results(self.path, self.columns)
            if doc.get("param", param) != param:
                raise ConfigError(f"{self.path}: points are keyed by '{doc.get('param')}', not '{param}'")
            old_meta = doc.get("meta", {})
            if not strict:
                self.meta, self.description = old_meta, doc.get("description", description)
            elif old_meta != self.meta:
                diff = sorted(k for k in set(old_meta) | set(self.meta) if old_meta.get(k) != self.meta.get(k))
                raise ConfigError(
                    f"{self.path} holds results of a different run (differs in: {', '.join(diff)}); "
                    "use another --out folder or delete the file"
                )
            self.points = to_points(doc)

    def done(self, value: Any) -> bool:
        return any(param_key(p.get(self.param)) == param_key(value) for p in self.points)

    def get(self, value: Any) -> dict | None:
        return next((p for p in self.points if param_key(p.get(self.param)) == param_key(value)), None)

    def add(self, point: dict) -> None:
        if self.param not in point:
            raise ValueError(f"point has no '{self.param}' entry")
        key = param_key(point[self.param])
        at = next((i for i, p in enumerate(self.points) if param_key(p.get(self.param)) == key), None)
        if at is None:
            self.points.append(point)
        else:  # replaced in place, so a table without a bpp order keeps its row order
            self.points[at] = point
        self.save()

    def doc(self) -> dict:
        return make_doc(self.name, self.points, self.description, self.param, self.meta, self.columns)

    def save(self) -> Path:
        return save_results(self.path, self.doc(), self.columns)
