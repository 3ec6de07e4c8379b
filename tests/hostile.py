"""Crafted .dnerv files: small, well-formed (valid CRCs, every tensor present with the right shape), and
describing decoders whose cost per frame is out of all proportion to the file.

Every tensor is a constant coded with a one-entry table, so the file is mostly the zero words the count
limit asks for (16 symbols per byte): a 16M-parameter decoder fits in about 1 MB.
"""

from __future__ import annotations

import math

import numpy as np

from dnervcodec.bitstream import CodedTensor, Container, Segment, write_container
from dnervcodec.compress.entropy import CodedSymbols
from dnervcodec.compress.quant import QuantParams
from dnervcodec.models.dnerv import DecoderConfig, decoder_shapes

FREE_SYMBOLS, SYMBOLS_PER_WORD = 4096, 64  # docs/bitstream.md, "Count limit"

# The two files: 4096x4096 frames, strides 8^4, last width 4096 (~275 GB of activations per frame);
# a kernel-63 last stage (~34 TFLOPs per frame) whose activations stay near 1 GiB.
HUGE_ACTIVATIONS = DecoderConfig(height=4096, width=4096, strides=(8, 8, 8, 8), kernels=(1, 1, 1, 1), embed_ch=1,
                                 lift_width=1, widths=(1, 1, 1, 4096), diff_ch=0)
KERNEL_63 = DecoderConfig(height=2048, width=2048, strides=(8, 8, 4, 2), kernels=(1, 1, 1, 63), embed_ch=1,
                          lift_width=1, widths=(1, 1, 64, 16), diff_ch=0)
CRAFTED = {"huge-activations": HUGE_ACTIVATIONS, "kernel-63": KERNEL_63}


def _constant(name: str, shape: tuple[int, ...]) -> CodedTensor:
    n = math.prod(shape)
    quant = QuantParams(shape=shape, bits=8, axis=None, scale=np.zeros(1, np.float32), offset=np.zeros(1, np.float32))
    coded = CodedSymbols(model="categorical", alphabet=256, count=n, params=np.array([0.0, float(n)]), words=None)
    return CodedTensor(name=name, quant=quant, coded=coded)


def craft(cfg: DecoderConfig, frames: int = 1) -> bytes:
    """A valid file for `cfg`: header, one segment, constant weights and embeddings, padded stream."""
    shapes = {f"w.{k}": v for k, v in decoder_shapes(cfg).items()}
    shapes["e.content"] = (frames, cfg.embed_ch, *cfg.embed_hw)
    if cfg.diff_ch:
        shapes["e.diff"] = (frames, cfg.diff_ch, *cfg.diff_hw)
    tensors = {name: _constant(name, shape) for name, shape in shapes.items()}
    count = sum(math.prod(s) for s in shapes.values())
    words = np.zeros(max(1, -(-(count - FREE_SYMBOLS) // SYMBOLS_PER_WORD)), np.uint32)
    header = {"encoder": "crafted", "video": {"frames": frames, "height": cfg.height, "width": cfg.width, "fps": 25.0,
                                              "source_size": [cfg.height, cfg.width], "start": 0},
              "coding": {"bits": 8}}
    segment = Segment(meta={"first_frame": 0, "frames": frames, "decoder": cfg.to_dict()}, tensors=tensors,
                      stream=words)
    return write_container(Container(header=header, segments=[segment]))
