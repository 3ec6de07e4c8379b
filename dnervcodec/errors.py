"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class DnervError(Exception):
    """Base class: something about the input or the options is wrong, and the message says what to do."""


class InputError(DnervError):
    """A file that is missing, unreadable, not a video, or has no frames."""


class ConfigError(DnervError):
    """An option that cannot work: an unfactorable size, an unknown budget string, a bad range."""


class OutputError(DnervError):
    """An output that exists (and overwriting was not asked for), or whose writing would destroy data we did not write."""


class BitstreamError(DnervError):
    """A .dnerv file that is truncated, corrupted, or from a newer format version."""


class CheckpointError(DnervError):
    """A checkpoint that does not match the run it should resume."""


class Interrupted(DnervError):
    """Ctrl-C (or a planned stop) during a long job; a checkpoint was written where a run folder was given."""

    exit_code = 130


class FitInterrupted(Interrupted):
    """A DNeRV fit was interrupted."""


class DenoiseInterrupted(Interrupted):
    """A learned denoiser's training was interrupted."""
