"""One encode of a sample clip with chosen rate-distortion settings, printed as one line (development probe).

    python tools/rd_point.py FRAMES FIT_EPOCHS RD_EPOCHS VALUE_BITS TARGET_BPP

Bunny at 160x320; prints bytes, bpp, decoded PSNR, the float and quantized PSNRs, the predicted size and
CPU/wall time. docs/data/rd-early-*.txt hold two of its outputs (from an earlier lambda controller).
"""

import sys
import time

from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.metrics import psnr
from dnervcodec.video import read_video

frames, epochs, rd, vb, bpp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
v = read_video("sample:bunny", (160, 320), 0, frames)
cfg = EncodeConfig(resolution=(160, 320), bpp=bpp, fit=FitConfig(epochs=epochs), rd_epochs=rd, value_bits=vb)
t, w = time.process_time(), time.time()
r = encode_video(v, cfg, progress=False)
dec, _ = decode(r.data)
pred = "-" if r.predicted_bits is None else f"{r.predicted_bits / 8:.0f}"
print(f"frames={frames} ep={epochs} rd={rd} vb={vb} bpp_target={bpp}: bytes={len(r.data)} bpp={r.bpp:.4f} "
      f"psnr={psnr(v.frames, dec):.2f} fit={r.psnr_fit:.2f} q={r.psnr_qat} pred={pred} "
      f"cpu={time.process_time() - t:.0f}s wall={time.time() - w:.0f}s params={r.sizing.stored} timings={r.timings}")
