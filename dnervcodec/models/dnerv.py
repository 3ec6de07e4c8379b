"""DNeRV (Zhao et al., CVPR 2023): a content stream and a diff stream that meet in a NeRV decoder via a CCU.

Encoders (dropped after fitting):
  ContentEncoder  ConvNeXt stages over frame t            -> [embed_ch, H/S, W/S]   (16x2x4 for 640x1280)
  DiffEncoder     ConvNeXt stages over [x_t - x_{t-1}, x_{t+1} - x_t] -> [diff_ch, H/d, W/d] (2x40x80)
Decoder (stored in the bitstream):
  1x1 lift of the content embedding, then NeRV blocks conv -> PixelShuffle -> GELU, widths shrinking by 1.2,
  kernels 1,3,5,5,5; at the stage whose input map is at 1/d of the frame the lifted diff embedding is fused
  by the CCU; a 3x3 head with a sigmoid gives RGB. `DecoderConfig` lists every layer's width, so a
  bitstream can rebuild a pruned decoder exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .strides import derive_strides, diff_strides, fusion_stage


@dataclass(frozen=True)
class DecoderConfig:
    """Everything needed to rebuild the decoder (the part that is stored), including pruned widths."""

    height: int
    width: int
    strides: tuple[int, ...]  # decoder upsampling per stage, lowest resolution first
    kernels: tuple[int, ...]  # conv kernel per stage
    embed_ch: int  # content embedding channels
    lift_width: int  # width after the 1x1 lift of the content embedding
    widths: tuple[int, ...]  # output width (after PixelShuffle) of each stage
    diff_ch: int = 2  # diff embedding channels; 0 = no diff stream (HNeRV-style ablation)
    diff_stride: int = 16
    diff_width: int = 0  # width of the diff branch's NeRV block output, read by the CCU
    diff_lift_width: int = 0  # width of the 1x1 lift of the diff embedding (differs from diff_width once pruned)

    def __post_init__(self) -> None:
        n = len(self.strides)
        if not 0 < n <= 8 or not (len(self.kernels) == len(self.widths) == n):
            raise ConfigError("decoder config: strides, kernels and widths must have one entry per stage")
        small = [*self.strides, *self.kernels, self.embed_ch, self.diff_ch + 1, self.diff_stride]
        wide = [self.lift_width, *self.widths, self.diff_width + 1, self.diff_lift_width + 1]
        if min(small + wide) < 1 or max(small) > 64 or max(wide) > 4096 or any(k % 2 == 0 for k in self.kernels):
            raise ConfigError("decoder config: widths, kernels or strides out of range")
        if self.diff_ch and (self.diff_width < 1 or self.diff_lift_width < 1):
            raise ConfigError("decoder config: a diff stream needs positive diff widths")
        if min(self.height, self.width) < 1 or self.height % math.prod(self.strides) or self.width % math.prod(self.strides):
            raise ConfigError("decoder config: strides do not divide the frame size")
        if math.prod(self.strides) * self.embed_hw[0] != self.height:
            raise ConfigError("decoder config: strides do not divide the frame height")
        if self.diff_ch and self.fuse_at is None:
            raise ConfigError(f"decoder config: no stage at 1/{self.diff_stride} of the frame to fuse the diff into")

    @property
    def embed_hw(self) -> tuple[int, int]:
        s = math.prod(self.strides)
        return self.height // s, self.width // s

    @property
    def diff_hw(self) -> tuple[int, int]:
        return self.height // self.diff_stride, self.width // self.diff_stride

    @property
    def fuse_at(self) -> int | None:
        return fusion_stage(self.strides, self.diff_stride) if self.diff_ch else None

    def stage_in_width(self, i: int) -> int:
        return self.lift_width if i == 0 else self.widths[i - 1]

    def embedding_values_per_frame(self) -> int:
        h, w = self.embed_hw
        dh, dw = self.diff_hw
        return self.embed_ch * h * w + (self.diff_ch * dh * dw if self.diff_ch else 0)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        """Inverse of to_dict. Integers only (a bitstream is untrusted: 12.5 or "12" is not a width)."""
        fields = {k: tuple(_integer(x, k) for x in v) if isinstance(v, list) else _integer(v, k) for k, v in d.items()}
        fields.setdefault("diff_lift_width", fields.get("diff_width", 0))  # configs written before it existed
        try:
            return cls(**fields)
        except TypeError as e:  # a missing or unknown field
            raise ConfigError(f"invalid decoder config: {e}") from None


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"decoder config: {key} holds {repr(value)[:20]}, not an integer")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Decoder plus the encoders that exist only while fitting."""

    decoder: DecoderConfig
    enc_width: int = 64
    content_strides: tuple[int, ...] = ()
    diff_enc_strides: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "decoder": self.decoder.to_dict(),
            "enc_width": self.enc_width,
            "content_strides": list(self.content_strides),
            "diff_enc_strides": list(self.diff_enc_strides),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(
            DecoderConfig.from_dict(d["decoder"]),
            int(d["enc_width"]),
            tuple(int(x) for x in d["content_strides"]),
            tuple(int(x) for x in d["diff_enc_strides"]),
        )


# Architectures a user can pick (`--arch`): what differs is only in the encoders, which the file never holds.
# "dnerv-paper" keeps the paper's (HNeRV's) ConvNeXt encoders of width 64. "dnerv" narrows them to 16: at the
# budgets of this codec the encoders took two thirds of every fitting step (Bunny 160x320: 48 of 77 ms), and
# the time saved buys more epochs: +1.4 dB float PSNR at about equal CPU time (docs/rd.md, fit ablation).
ARCHITECTURES = {"dnerv": 16, "dnerv-paper": 64}  # name -> encoder width
DEFAULT_ARCH = "dnerv"


def encoder_width(arch: str) -> int:
    """The encoder width of a named architecture (ConfigError for an unknown name)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture '{arch}' (choose {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch]


def stage_widths(lift_width: int, stages: int, reduce: float = 1.2, min_width: int = 12) -> tuple[int, ...]:
    """HNeRV's width rule: each stage divides the width by `reduce`, never below `min_width`."""
    widths, w = [], lift_width
    for _ in range(stages):
        w = max(round(w / reduce), min_width)
        widths.append(w)
    return tuple(widths)


def build_config(
    height: int,
    width: int,
    lift_width: int,
    use_diff: bool = True,
    diff_stride: int = 16,
    embed_ch: int = 16,
    diff_ch: int = 2,
    enc_width: int = ARCHITECTURES[DEFAULT_ARCH],
    reduce: float = 1.2,
    min_width: int = 12,
    kernels: tuple[int, int] = (1, 5),
    min_side: int = 2,
) -> ModelConfig:
    """A model for a height x width clip whose first decoder width is `lift_width`.

    The strides always come from the diff-stream layout, so the no-diff ablation has exactly the same
    decoder shape apart from the CCU.
    """
    strides = derive_strides(height, width, diff_stride, min_side=min_side)
    widths = stage_widths(lift_width, len(strides), reduce, min_width)
    k_first, k_max = kernels
    ks = tuple(min(k_first + 2 * i, k_max) for i in range(len(strides)))
    fuse = fusion_stage(strides, diff_stride)
    dec = DecoderConfig(
        height=height,
        width=width,
        strides=strides,
        kernels=ks,
        embed_ch=embed_ch,
        lift_width=lift_width,
        widths=widths,
        diff_ch=diff_ch if use_diff else 0,
        diff_stride=diff_stride,
        diff_width=(lift_width if fuse == 0 else widths[fuse - 1]) if use_diff else 0,
        diff_lift_width=(lift_width if fuse == 0 else widths[fuse - 1]) if use_diff else 0,
    )
    return ModelConfig(dec, enc_width, strides, diff_strides(diff_stride) if use_diff else ())


# ---------------------------------------------------------------- layers


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW map (ConvNeXt's channels-first LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm, 4x pointwise expansion with GELU, layer scale, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, 1)
        self.pw2 = nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class ConvNeXtEncoder(nn.Module):
    """Patchify stages (conv with kernel = stride, LayerNorm, one ConvNeXt block), then a 1x1 to out_ch."""

    def __init__(self, in_ch: int, strides: tuple[int, ...], width: int, out_ch: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_ch
        for s in strides:
            layers += [nn.Conv2d(ch, width, s, stride=s), LayerNorm2d(width), ConvNeXtBlock(width)]
            ch = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(x))


class NeRVBlock(nn.Module):
    """conv(k) -> PixelShuffle(s) -> GELU: upsamples by s while shrinking channels."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.shuffle(self.conv(x)))


class CCU(nn.Module):
    """Collaborative content unit: a gated fusion of content c and diff d (both width w, same size).

    p = tanh(Wc*c + Wd*d), s = sigmoid(Uc*c + Ud*d), c' = s*p + (1-s)*c, with 3x3 convs. The four convs are
    held as two: `proposal` (W) and `gate` (U), each over the concatenation [c, d].
    """

    def __init__(self, width: int, diff_width: int | None = None) -> None:
        super().__init__()
        cd = width + (width if diff_width is None else diff_width)
        self.proposal = nn.Conv2d(cd, width, 3, padding=1)
        self.gate = nn.Conv2d(cd, width, 3, padding=1)

    def forward(self, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        cd = torch.cat([c, d], 1)
        p = torch.tanh(self.proposal(cd))
        s = torch.sigmoid(self.gate(cd))
        return s * p + (1 - s) * c


class Decoder(nn.Module):
    """The stored part: content and diff embeddings in, RGB frames in [0, 1] out."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.lift = nn.Conv2d(cfg.embed_ch, cfg.lift_width, 1)
        self.blocks = nn.ModuleList(
            NeRVBlock(cfg.stage_in_width(i), cfg.widths[i], cfg.kernels[i], cfg.strides[i])
            for i in range(len(cfg.strides))
        )
        if cfg.diff_ch:
            self.diff_lift = nn.Conv2d(cfg.diff_ch, cfg.diff_lift_width, 1)
            self.diff_block = NeRVBlock(cfg.diff_lift_width, cfg.diff_width, 3, 1)
            self.ccu = CCU(cfg.stage_in_width(cfg.fuse_at), cfg.diff_width)
        self.head = nn.Conv2d(cfg.widths[-1], 3, 3, padding=1)

    def forward(self, content: torch.Tensor, diff: torch.Tensor | None = None) -> torch.Tensor:
        x = self.lift(content)
        for i, block in enumerate(self.blocks):
            if i == self.cfg.fuse_at:
                x = self.ccu(x, self.diff_block(self.diff_lift(diff)))
            x = block(x)
        return torch.sigmoid(self.head(x))


def frame_differences(prev: torch.Tensor, cur: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """[x_t - x_{t-1}, x_{t+1} - x_t]; callers pass cur as prev/nxt at the clip's ends, giving zeros there."""
    return torch.cat([cur - prev, nxt - cur], 1)


class DNeRV(nn.Module):
    """Encoders plus decoder, as fitted. `embed` gives what is stored; `decoder` is what is shipped."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.decoder
        self.content_encoder = ConvNeXtEncoder(3, cfg.content_strides, cfg.enc_width, d.embed_ch)
        self.diff_encoder = ConvNeXtEncoder(6, cfg.diff_enc_strides, cfg.enc_width, d.diff_ch) if d.diff_ch else None
        self.decoder = Decoder(d)

    def embed(self, frames: torch.Tensor, diffs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        content = self.content_encoder(frames)
        diff = self.diff_encoder(diffs) if self.diff_encoder is not None else None
        return content, diff

    def forward(self, frames: torch.Tensor, diffs: torch.Tensor | None) -> torch.Tensor:
        return self.decoder(*self.embed(frames, diffs))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def decoder_shapes(cfg: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every entry of `Decoder(cfg).state_dict()`, from the config alone.

    A reader checks a file's tensors against these before building anything: a hostile config must not
    cost the time or memory of constructing its module.
    """
    shapes: dict[str, tuple[int, ...]] = {
        "lift.weight": (cfg.lift_width, cfg.embed_ch, 1, 1), "lift.bias": (cfg.lift_width,)}
    for i in range(len(cfg.strides)):
        out, k = cfg.widths[i] * cfg.strides[i] ** 2, cfg.kernels[i]
        shapes[f"blocks.{i}.conv.weight"] = (out, cfg.stage_in_width(i), k, k)
        shapes[f"blocks.{i}.conv.bias"] = (out,)
    if cfg.diff_ch:
        w, lw, c = cfg.diff_width, cfg.diff_lift_width, cfg.stage_in_width(cfg.fuse_at)
        shapes.update({
            "diff_lift.weight": (lw, cfg.diff_ch, 1, 1), "diff_lift.bias": (lw,),
            "diff_block.conv.weight": (w, lw, 3, 3), "diff_block.conv.bias": (w,),
            "ccu.proposal.weight": (c, c + w, 3, 3), "ccu.proposal.bias": (c,),
            "ccu.gate.weight": (c, c + w, 3, 3), "ccu.gate.bias": (c,),
        })
    shapes["head.weight"] = (3, cfg.widths[-1], 3, 3)
    shapes["head.bias"] = (3,)
    return shapes


def decoder_params(cfg: DecoderConfig) -> int:
    """Weights + biases of the decoder, computed from the config alone (no module is built)."""
    return sum(math.prod(shape) for shape in decoder_shapes(cfg).values())


def stored_values(cfg: DecoderConfig, num_frames: int) -> int:
    """What the bitstream stores: decoder weights plus every content and diff embedding."""
    return decoder_params(cfg) + num_frames * cfg.embedding_values_per_frame()


__all__ = [
    "DecoderConfig",
    "ModelConfig",
    "DNeRV",
    "Decoder",
    "CCU",
    "NeRVBlock",
    "build_config",
    "stage_widths",
    "frame_differences",
    "decoder_params",
    "decoder_shapes",
    "stored_values",
    "count_params",
]
