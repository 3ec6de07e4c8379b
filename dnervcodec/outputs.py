"""Where outputs go: never destroy data we did not write, write atomically, and respect the user's umask.

The rules, the same for every command:
- An existing output file is replaced only when asked (`overwrite=True`, the CLI's `-y`), ffmpeg-style.
- A folder of frames must be new or empty. With `overwrite` it may also hold frames that this program
  wrote earlier (`frame_00000.png`, ... and nothing else); those are replaced. A folder holding any other
  file is refused even with `overwrite`: we never delete, or mix our frames with, files we did not write.
- Everything is written under a temporary name beside its target, then renamed, so an interrupted write
  leaves either the old output or the new one, never half of one.
- Files and folders are created with the modes `open()` and `mkdir()` give (0666/0777 less the umask), not
  tempfile's private 0600/0700: an output is meant to be shared like any file the user makes.
- A run folder (checkpoints) is removed only when this program created it: it then holds a marker file.
Checks run before any work, so a refusal costs no time; the final rename checks again, so a file that
appears meanwhile is not clobbered either.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import OutputError

STDOUT = "-"
FRAME_NAME = "frame_{:05d}.png"
RUN_MARKER = ".dnerv-run"  # written into a run folder that this program creates; only such folders are removed
_OUR_FRAME = re.compile(r"frame_\d{5,}\.png")
_OUR_TEMP = re.compile(r"\.frame_\d{5,}\.png\.[0-9a-f]+\.part")  # left by a killed write into an existing folder
OVERWRITE_HINT = "use -y/--overwrite to replace it"


def is_stdout(path: str | os.PathLike) -> bool:
    """'-' means standard output, as in ffmpeg; it must never become a file or folder named '-'."""
    return str(path) == STDOUT


def _check_parent(path: Path) -> None:
    """The nearest existing ancestor must be a folder we may create entries in (we create the missing ones)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {path}: no permission to write in {parent}")


def check_file_output(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a file output that is a folder, a device or other non-file, or exists without `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file; give another name")
        if not overwrite:
            raise OutputError(f"{path} exists; {OVERWRITE_HINT}")
    _check_parent(path)


def is_our_frame(name: str) -> bool:
    """A name that write_frame_folder gives (or its temporary name)."""
    return bool(_OUR_FRAME.fullmatch(name) or _OUR_TEMP.fullmatch(name))


def check_folder_output(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a frame folder that is not a folder, holds files we did not write, or holds our frames without `overwrite`."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        _check_parent(path)
        return
    if not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder; give a new folder name")
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise OutputError(f"cannot read folder {path}: {e.strerror}") from None
    foreign = [n for n in names if not is_our_frame(n)]
    if foreign:
        raise OutputError(f"{path} is a folder holding files this program did not write (such as {foreign[0]}); "
                          "write the frames into a new or empty folder")
    if names and not overwrite:
        raise OutputError(f"{path} holds frames from an earlier run; use -y/--overwrite to replace them")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in {path}: permission denied")


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


def _create_file(path: Path) -> int:
    """A new file (never an existing one), mode 0666 less the umask."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename tmp to path; without `overwrite`, atomically refuse when path appeared in the meantime."""
    if overwrite:
        if path.is_dir():
            raise OutputError(f"{path} is a folder; give a file name")
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: a no-clobber rename
    except FileExistsError:
        raise OutputError(f"{path} exists; {OVERWRITE_HINT}") from None
    except OSError:  # a file system without hard links
        if path.exists() or path.is_symlink():
            raise OutputError(f"{path} exists; {OVERWRITE_HINT}") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_file_atomic(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = True) -> Path:
    """Let `write(tmp)` fill a new temporary file beside `path`, then rename it to `path`.

    `write` may reopen the name (PyAV, torch.save do): the file already exists with the umask's mode, which
    reopening keeps. On any error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    os.close(_create_file(tmp))
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _publish(tmp, path, overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write a file so that readers see either nothing or all of it (temp file, fsync, rename).

    The default replaces an existing file (results files are rewritten); commands pass their `-y`.
    """
    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
        try:
            _write_fd(fd, data)
        finally:
            os.close(fd)

    return write_file_atomic(path, write, overwrite)


def write_frame_folder(path: str | os.PathLike, files: Iterable[bytes], overwrite: bool = False) -> Path:
    """Write each item of `files` as FRAME_NAME.format(i) in the folder `path` (see the module's rules).

    A new folder is filled under a temporary name beside it and renamed as a whole. Into an existing folder
    (empty, or holding only our frames with `overwrite`) every frame is first written to a temporary name
    inside it and only then renamed, so a failure while encoding leaves the folder as it was; our frames
    beyond the new count are then removed, so the folder holds exactly this video.
    """
    path = Path(path)
    check_folder_output(path, overwrite)
    if path.is_dir():
        return _fill_existing_folder(path, files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = _temp_beside(path)
    os.mkdir(tmp_dir, 0o777)
    try:
        for i, data in enumerate(files):
            fd = _create_file(tmp_dir / FRAME_NAME.format(i))
            try:
                _write_fd(fd, data)
            finally:
                os.close(fd)
        try:
            os.rename(tmp_dir, path)  # POSIX: succeeds onto a missing or empty folder only
        except OSError:
            raise OutputError(f"{path} appeared while the frames were written; nothing was replaced") from None
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # our own temporary folder
        raise
    return path


def _fill_existing_folder(path: Path, files: Iterable[bytes]) -> Path:
    written: list[tuple[Path, Path]] = []
    try:
        for i, data in enumerate(files):
            final = path / FRAME_NAME.format(i)
            tmp = path / f".{final.name}.{secrets.token_hex(4)}.part"
            written.append((tmp, final))
            fd = _create_file(tmp)
            try:
                _write_fd(fd, data)
            finally:
                os.close(fd)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    keep = set()
    for tmp, final in written:
        os.replace(tmp, final)
        keep.add(final.name)
    for name in os.listdir(path):  # stale frames of a longer earlier run; is_our_frame guards every deletion
        if name not in keep and is_our_frame(name):
            (path / name).unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def run_folder(path: str | os.PathLike, remove_on_success: bool) -> Iterator[Path]:
    """A checkpoint folder for one command. Created (with RUN_MARKER inside) when missing.

    After success it is removed when `remove_on_success` and it carries the marker, i.e. this program made
    it (this run, or an interrupted earlier run that this one resumed). A folder the user made or named is
    never removed. On failure a folder this run created is removed only if nothing but the marker is in it,
    so a checkpoint written before the failure stays for --resume.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"run folder {path} exists and is not a folder; give another --run-dir")
    created = not path.exists()
    if created:
        _check_parent(path)
        path.mkdir(parents=True)
        (path / RUN_MARKER).write_text("created by dnerv; removed with its checkpoints after a finished run\n")
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):  # cleanup must not hide the error that got us here
            if created and os.listdir(path) == [RUN_MARKER]:
                (path / RUN_MARKER).unlink()
                path.rmdir()
        raise
    if remove_on_success and not path.is_symlink() and (path / RUN_MARKER).is_file():
        shutil.rmtree(path, ignore_errors=True)  # best effort: the output is already written
