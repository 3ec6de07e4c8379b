"""dnervcodec: compress a video by fitting a DNeRV network to it."""

import os

# Spinning OpenMP threads wait actively for each other at every parallel region. On a machine that is busy
# with anything else they burn their time slices spinning: a small fit with torch's 2 threads took 624 s
# instead of 21 s next to other jobs on our 2-core machines (20 s with passive waiting). So threads sleep
# while they wait, unless the user chose otherwise. It only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.5.0"
