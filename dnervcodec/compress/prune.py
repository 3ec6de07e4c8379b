"""Structured channel pruning of the decoder with torch-pruning.

torch-pruning treats nn.PixelShuffle as element-wise and gets the channel mapping wrong (its issues #98 and
#420): after a shuffle by r, channel i comes from the conv's outputs i*r^2 .. i*r^2 + r^2 - 1. We register the
whole conv -> PixelShuffle -> GELU unit (NeRVBlock) as a customized layer with a pruner that knows that
mapping. torch-pruning's dependency graph then ties everything else for us: the CCU's proposal and gate
convs, the content map they gate (through s*p + (1-s)*c) and the diff branch they read (through the concat).
The result is a smaller decoder plus the new widths for the bitstream header.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from ..errors import ConfigError
from ..models.dnerv import Decoder, DecoderConfig, NeRVBlock


class NeRVBlockPruner(tp.pruner.function.BasePruningFunc):
    """Prunes post-shuffle channel i of a NeRVBlock as conv outputs i*r^2 .. i*r^2 + r^2 - 1."""

    TARGET_MODULES = (NeRVBlock,)

    @staticmethod
    def _r2(layer: NeRVBlock) -> int:
        return layer.shuffle.upscale_factor**2

    def prune_out_channels(self, layer: NeRVBlock, idxs: Sequence[int]) -> NeRVBlock:
        r2 = self._r2(layer)
        tp.prune_conv_out_channels(layer.conv, [i * r2 + k for i in idxs for k in range(r2)])
        return layer

    def prune_in_channels(self, layer: NeRVBlock, idxs: Sequence[int]) -> NeRVBlock:
        tp.prune_conv_in_channels(layer.conv, list(idxs))
        return layer

    def get_out_channels(self, layer: NeRVBlock) -> int:
        return layer.conv.out_channels // self._r2(layer)

    def get_in_channels(self, layer: NeRVBlock) -> int:
        return layer.conv.in_channels


def _channel_weights(module: nn.Module, idxs: Sequence[int], out: bool) -> torch.Tensor:
    """[len(idxs), -1] weights that a group removes from this module, for a magnitude importance."""
    if isinstance(module, NeRVBlock):
        w = module.conv.weight
        if out:
            r2 = module.shuffle.upscale_factor**2
            return w.view(-1, r2, *w.shape[1:])[list(idxs)].flatten(1)
        return w[:, list(idxs)].transpose(0, 1).flatten(1)
    if isinstance(module, nn.Conv2d):
        w = module.weight
        return w[list(idxs)].flatten(1) if out else w[:, list(idxs)].transpose(0, 1).flatten(1)
    return torch.zeros(len(idxs), 0)


def group_importance(group) -> torch.Tensor:
    """L1 magnitude of every weight a channel takes with it, each layer's share normalised by its mean."""
    score = None
    for dep, idxs in group:
        out = getattr(dep.handler, "__name__", "") == "prune_out_channels"
        w = _channel_weights(dep.target.module, idxs, out).detach().abs().sum(1)
        if w.numel() == 0:
            continue
        w = w / w.mean().clamp_min(1e-12)
        score = w if score is None else score + w
    return score


def widths_of(decoder: Decoder) -> dict:
    """Read the widths off a (pruned) decoder, in DecoderConfig's terms."""
    cfg = decoder.cfg
    widths = tuple(b.conv.out_channels // s**2 for b, s in zip(decoder.blocks, cfg.strides))
    out = {"lift_width": decoder.lift.out_channels, "widths": widths}
    if cfg.diff_ch:
        out["diff_width"] = NeRVBlockPruner().get_out_channels(decoder.diff_block)
        out["diff_lift_width"] = decoder.diff_lift.out_channels
    return out


def prune_decoder(decoder: Decoder, ratio: float) -> tuple[Decoder, DecoderConfig]:
    """Remove channels until the decoder has at least `ratio` fewer parameters; return (decoder, config).

    Every prunable group loses the same share of its channels (the smallest share that reaches the
    parameter target, found by bisection), each group dropping its channels of lowest L1 magnitude.
    The decoder's input channels (the stored embeddings) and its RGB head output are never pruned.
    """
    if not 0 <= ratio < 1:
        raise ConfigError(f"--prune must be in [0, 1), got {ratio}")
    if ratio == 0:
        return decoder, decoder.cfg
    device = next(decoder.parameters()).device
    source = copy.deepcopy(decoder).cpu().to(memory_format=torch.contiguous_format)
    target = sum(p.numel() for p in source.parameters()) * (1 - ratio)
    lo, hi = 0.0, 0.9
    best = _prune_share(copy.deepcopy(source), hi)
    for _ in range(12):
        mid = (lo + hi) / 2
        trial = _prune_share(copy.deepcopy(source), mid)
        if sum(p.numel() for p in trial.parameters()) <= target:
            hi, best = mid, trial
        else:
            lo = mid
    new_cfg = replace(decoder.cfg, **widths_of(best))
    rebuilt = Decoder(new_cfg)
    rebuilt.load_state_dict(best.state_dict())  # proves the header's widths describe the pruned weights
    return rebuilt.to(device), new_cfg


def _prune_share(decoder: Decoder, share: float) -> Decoder:
    """Remove round(share * channels) channels of lowest magnitude from every prunable group, in place."""
    cfg = decoder.cfg
    h, w = cfg.embed_hw
    example = [torch.rand(1, cfg.embed_ch, h, w)]
    if cfg.diff_ch:
        example.append(torch.rand(1, cfg.diff_ch, *cfg.diff_hw))
    block_pruner = NeRVBlockPruner()  # the same instance must name the handler in every group query
    graph = tp.DependencyGraph().build_dependency(
        decoder, example_inputs=tuple(example), customized_pruners={NeRVBlock: block_pruner}
    )
    candidates = [decoder.lift, *decoder.blocks]
    if cfg.diff_ch:
        candidates += [decoder.diff_lift, decoder.diff_block]
    done: set[int] = set()
    for module in candidates:
        if id(module) in done:
            continue
        pruner = graph.get_pruner_of_module(module)
        channels = pruner.get_out_channels(module)
        group = graph.get_pruning_group(module, pruner.prune_out_channels, idxs=list(range(channels)))
        done.update(id(dep.target.module) for dep, _ in group if dep.handler.__name__ == "prune_out_channels")
        n_remove = min(int(round(channels * share)), channels - 1)
        if n_remove > 0:
            idxs = torch.argsort(group_importance(group))[:n_remove].tolist()
            graph.get_pruning_group(module, pruner.prune_out_channels, idxs=idxs).prune()
    return decoder
