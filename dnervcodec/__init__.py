"""dnervcodec: compress a video by fitting a DNeRV network to it."""

__version__ = "0.1.0"
