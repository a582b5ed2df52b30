"""Output: no input is ever overwritten, and every output is whole, even under SIGKILL.

Three promises, one module (every command that writes goes through here):

- `check_outputs(outputs, inputs)` refuses (UsageError, exit 2, before anything is written) an
  output that is, or would replace, a file the command reads or skipped (`input_files` lists
  them: every file under an input folder, hidden and skipped ones included). Identity is by
  real path and by inode (a hard link is the same file).
- `atomic_path(target)`: one file. It is written as a hidden temp file beside the target,
  flushed to disk (fsync), then renamed over it; the folder is fsynced. After any kill the
  target holds the complete old file or the complete new one.
- `output_set(folder)`: a set of files (`analyze --out`, `plot --out`). It is written into a
  hidden sibling folder, `.NAME.dvao-PID-XXXX`, marked incomplete by a `.dvao-incomplete` file;
  every file and the folder are fsynced, then the two folders are swapped in one atomic rename
  (Linux `renameat2(RENAME_EXCHANGE)`), so the folder's set is the complete old set until that
  instant and the complete new set after it. What else was in the folder (your own files,
  `plots/`) is in the new folder too: files are hard-linked into the stage before the swap,
  folders moved back just after it; then the old set is deleted.

Crash windows, and what the next run writing to the same target does about them:

- before the swap: the folder holds the old set; the hidden sibling holds a partial new set
  with the marker. The next run deletes it.
- after the swap, before the old folder is gone: the folder holds the new set and your files,
  and may still hold the marker (hidden) or lack some of your folders, which wait in the hidden
  sibling (which has no marker). The next run moves them back (never over an entry of the new
  set) and deletes the rest.
- where the exchange rename is not available (not Linux, or a filesystem without it), the old
  folder is renamed aside and the new one renamed in: a kill between the two renames leaves no
  folder at the target for that instant, and the next run renames the old set back.

Temp files and folders carry the writer's process id: those of a live process (a concurrent
run) are left alone; those of a dead one are cleaned up as above. OS errors while writing (a
read-only folder, a full disk) become an `OutputError` naming the target; nothing is left
behind.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import json
import math
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, OutputError, UsageError

if TYPE_CHECKING:
    import polars as pl

MARKER = ".dvao-incomplete"  # inside a staged set until it is swapped in
_TAG = ".dvao-"  # temp names: .TARGETNAME.dvao-PID-HEX[.tmp]
_LEGACY_TMP = re.compile(r"^\.[a-z0-9_]{8}\.tmp$")  # the mkstemp temps of earlier versions
# errors that come from the destination, not from reading an input
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EBUSY,  # a mount point cannot be swapped
    errno.EXDEV,
}


# --------------------------------------------------------------------------------------------
# Never overwrite an input
# --------------------------------------------------------------------------------------------


def input_files(args: Iterable[str | Path], patterns: Sequence[str] | None = None) -> list[Path]:
    """The files a command's input arguments name: each file itself; under a folder, every file
    matching `patterns` (all files when None), recursively, hidden and skipped ones too (a
    reader's discovery skips them, but they are the user's); and what a glob matches, its
    folders expanded likewise. Names that do not exist are left out.

    `patterns` are the kinds of file the reader looks at in a folder (a log reader: *.parquet):
    the files it reads or skips. Others in the folder (your plots/) are neither."""
    found: list[Path] = []
    for raw in args:
        text = str(raw)
        path = Path(text)
        if path.exists():
            found.extend(_files_in(path, patterns))
        elif any(ch in text for ch in "*?["):
            for match in sorted(glob.glob(text, recursive=True)):
                found.extend(_files_in(Path(match), patterns))
    return found


def _files_in(path: Path, patterns: Sequence[str] | None) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = []
    for root, _dirs, names in os.walk(path):
        files.extend(
            Path(root) / name
            for name in names
            if patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)
        )
    return files


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def check_outputs(
    outputs: Iterable[str | Path],
    inputs: Iterable[str | Path],
    *,
    scanned: Iterable[str | Path] = (),
    beside: Iterable[str | Path] = (),
    kinds: Sequence[str] | None = ("*.parquet",),
    option: str = "--out",
) -> None:
    """Refuse any output that is, or would replace, one of `inputs` (UsageError, exit 2). An
    output may be a folder that is replaced whole: then no input may lie below it.

    `scanned` are folders a reader takes files from (a log folder: its Parquet parts; an
    importer's source folder): an output of one of `kinds` (name patterns; None: any file)
    inside one, outside hidden folders, would silently join the input next time, so it is
    refused too. `beside` are the folders of the log files read (a file or a glob argument): an
    output of the same kind directly beside one would be read with it by `dvao analyze FOLDER`
    or the same glob next time, and is refused likewise.
    """
    inputs = [Path(p) for p in inputs]
    beside_real = {os.path.realpath(p): Path(p) for p in beside}
    real = {os.path.realpath(p): p for p in inputs}
    inodes = {ident: p for p in inputs if (ident := _identity(p)) is not None}
    outputs = [Path(p) for p in outputs]
    for out in outputs:  # first: is any output an input itself, or a folder holding one
        under = os.path.realpath(out) + os.sep  # an output folder is replaced with all below it
        inside = next((p for r, p in real.items() if r.startswith(under)), None)
        if inside is not None:
            raise UsageError(
                f"{option} would replace a folder holding an input ({inside}); write elsewhere",
                path=out,
            )
        hit = real.get(os.path.realpath(out))
        ident = _identity(out)
        if hit is None and ident is not None:
            hit = inodes.get(ident)
        if hit is not None:
            same = "" if os.path.realpath(hit) == os.path.realpath(out) else f" ({hit})"
            raise UsageError(
                f"{option} would overwrite an input (a file this command reads or skips{same}); "
                "write elsewhere",
                path=out,
            )
    for out in outputs:  # then: would any be read with the inputs next time
        if kinds is not None and not any(fnmatch.fnmatch(out.name, k) for k in kinds):
            continue
        for folder in scanned:
            rel = os.path.relpath(os.path.realpath(out), os.path.realpath(folder))
            parts = Path(rel).parts
            if (
                rel != os.curdir
                and parts[0] != os.pardir
                and not any(part.startswith((".", "_")) for part in parts)
            ):
                raise UsageError(
                    f"is inside the log folder {folder}: it would be read as part of the log "
                    f"next time; {option} must be outside it",
                    path=out,
                )
        near = beside_real.get(os.path.realpath(out.parent))
        if near is not None:
            raise UsageError(
                f"is beside the log files of {near}: it would be read as part of the log "
                f"next time (a folder or glob read takes it); {option} must be another folder",
                path=out,
            )


# --------------------------------------------------------------------------------------------
# Durable renames
# --------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data to disk (a folder: its entries, i.e. renames)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * path.is_dir())
    try:
        os.fsync(fd)
    except OSError as err:  # some filesystems cannot fsync a folder; the data is still there
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _temp_name(target: Path) -> str:
    return f".{target.name}{_TAG}{os.getpid()}-{secrets.token_hex(4)}"


def _dead_temps(target: Path) -> list[Path]:
    """Temp files and staged folders beside `target` left by runs that are no longer alive."""
    prefix = f".{target.name}{_TAG}"
    dead = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(prefix):
            pid = name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                dead.append(Path(entry.path))
        elif name.startswith(f".{target.name}.") and _LEGACY_TMP.match(
            name[len(target.name) + 1 :]
        ):
            dead.append(Path(entry.path))
    return sorted(dead)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier, interrupted write of this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_error(err: BaseException, target: Path, written: Iterable[Path] = ()) -> bool:
    """Whether an OSError raised while writing `target` comes from the destination (not from
    reading an input, which names its own file)."""
    if not isinstance(err, OSError):
        return False
    own = {str(target), *(str(p) for p in written)}
    if err.filename is not None and str(err.filename) not in own:
        return False
    text = str(err)
    return err.errno in _WRITE_ERRNOS or "No space left" in text or "quota" in text.lower()


def _output_error(err: OSError, target: Path) -> OutputError:
    if err.errno == errno.EDQUOT or "quota" in str(err).lower():
        return OutputError(
            f"disk full ({os.strerror(errno.EDQUOT)}); nothing was written", path=target
        )
    if err.errno == errno.ENOSPC or "No space left" in str(err):  # pyarrow sets no errno
        return OutputError(
            f"disk full ({os.strerror(errno.ENOSPC)}); nothing was written", path=target
        )
    reason = err.strerror or (str(err).strip().splitlines() or [type(err).__name__])[0]
    return OutputError(f"cannot write ({reason}); nothing was written", path=target)


def _check_folder(target: Path) -> None:
    """The nearest existing ancestor of `target` must be a folder (not a file)."""
    for parent in target.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise OutputError(
                    f"cannot write ({parent} is not a folder); nothing was written", path=target
                )
            return


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success fsync it and rename it to `target`, on
    error delete it. Temp files of killed runs for the same target are deleted first.

    A target that exists must be a regular file (a link to one is written through): renaming
    over `/dev/stdout` or a directory would do harm.
    """
    target = Path(target)
    if target.exists() and not target.is_file():
        raise UsageError("is not a regular file; write to a file path", path=target)
    if target.is_symlink():
        target = target.resolve()
    _check_folder(target)
    tmp = target.parent / (_temp_name(target) + ".tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for dead in _dead_temps(target):
            _remove(dead)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
        os.close(fd)
    except OSError as err:
        raise _output_error(err, target) from None
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except BaseException as err:
        _remove(tmp)
        if _write_error(err, target, [tmp]):
            raise _output_error(err, target) from None  # type: ignore[arg-type]
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Output sets: a folder swapped in whole
# --------------------------------------------------------------------------------------------


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic rename (Linux renameat2 RENAME_EXCHANGE). False where the
    system or the filesystem lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _link_others(target: Path, stage: Path) -> None:
    """Your files in `target` that are not the set's, hard-linked into the stage (links copied),
    so they are in the new folder the instant it is swapped in. Folders (`plots/`), and files
    that cannot be linked, follow just after the swap (`_carry_over`)."""
    for entry in os.scandir(target):
        dest = stage / entry.name
        if entry.name == MARKER or os.path.lexists(dest):
            continue
        with contextlib.suppress(OSError):
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), dest)
            elif entry.is_file(follow_symlinks=False):
                os.link(entry.path, dest)


def _carry_over(old: Path, target: Path) -> None:
    """Move every entry of `old` that `target` lacks into it (your own files, plots/), then
    delete what is left of `old` (the replaced set)."""
    for entry in sorted(os.listdir(old)):
        if entry != MARKER and not os.path.lexists(target / entry):
            os.rename(old / entry, target / entry)
    _fsync(target)
    shutil.rmtree(old)


def recover(target: str | Path) -> None:
    """Finish or undo what killed runs left for the output folder `target` (see the module
    docstring): staged sets with the marker are deleted, swapped-out old folders give back
    what is not in the target (or become the target when it is missing)."""
    target = Path(target)
    dead = [p for p in _dead_temps(target) if p.is_dir() and not p.is_symlink()]
    for path in sorted(dead, key=lambda p: (p / MARKER).exists()):
        if (path / MARKER).exists():
            shutil.rmtree(path)
        elif not os.path.lexists(target):
            os.rename(path, target)
        else:
            _carry_over(path, target)
    for path in _dead_temps(target):  # stray temp files too
        _remove(path)
    if target.is_dir() and (target / MARKER).exists():
        (target / MARKER).unlink()
    if dead:
        _fsync(target.parent)


@contextmanager
def output_set(
    target: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    scanned: Iterable[str | Path] = (),
    beside: Iterable[str | Path] = (),
    option: str = "--out",
) -> Iterator[Path]:
    """Yield an empty hidden staging folder; write the set's files into it. On success the
    folder becomes `target` in one swap (module docstring); on any error or interrupt it is
    deleted and `target` is untouched.

    Before the swap, every file name in the stage is checked against `inputs` with
    `check_outputs` (and `scanned`), so a set never replaces a file the command read.
    """
    target = Path(target)
    if os.pardir in target.parts or (target.is_symlink() and target.is_dir()):
        target = Path(os.path.realpath(target))  # `a/..` cannot be renamed: its real folder
    if os.path.lexists(target) and not target.is_dir():
        raise OutputError(f"exists and is not a folder; {option} takes a folder", path=target)
    here = os.path.realpath(os.getcwd())
    real = os.path.realpath(target)
    if here == real or here.startswith(real.rstrip(os.sep) + os.sep):
        raise UsageError(
            f"is the current folder or holds it; {option} replaces its folder as a whole: "
            "name a folder of its own (e.g. --out report)",
            path=target,
        )
    _check_folder(target)
    inputs, scanned, beside = list(inputs), list(scanned), list(beside)
    stage = target.parent / _temp_name(target)
    try:
        target.mkdir(parents=True, exist_ok=True)  # empty until the first set is swapped in
        recover(target)
        stage.mkdir()
        (stage / MARKER).touch()
    except OSError as err:
        _remove(stage)
        raise _output_error(err, target) from None
    try:
        yield stage
        names = sorted(n for n in os.listdir(stage) if n != MARKER)
        check_outputs(
            [target / n for n in names], inputs, scanned=scanned, beside=beside, option=option
        )
        for root, _dirs, files in os.walk(stage):
            for name in files:
                _fsync(Path(root) / name)
            _fsync(Path(root))
        if not os.path.lexists(target):
            os.rename(stage, target)
            (target / MARKER).unlink()
            _fsync(target.parent)
            return
        _link_others(target, stage)
        _fsync(stage)
        old = stage  # after the swap the staging path holds the old folder
        if not _exchange(stage, target):
            old = target.parent / _temp_name(target)
            os.rename(target, old)  # window: no folder at target (recover() renames it back)
            os.rename(stage, target)
        (target / MARKER).unlink()
        _fsync(target.parent)
        _carry_over(old, target)
        _fsync(target.parent)
    except BaseException as err:
        if (stage / MARKER).exists():  # not swapped in: the target is untouched
            _remove(stage)
        if _write_error(err, target):
            raise _output_error(err, target) from None  # type: ignore[arg-type]
        raise


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def write_parquet(df: pl.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        df.write_parquet(tmp)


def loads_json(text: str, *, path: str | Path, line: int | None = None, what: str = "file") -> Any:
    """JSON from a user's file. A number too long for Python (over 4300 digits) or nesting too
    deep is an InputError naming the file (and line); a malformed one raises JSONDecodeError,
    which callers word for their format."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(
            f"a number in this JSON {what} is too long to read (over 4300 digits)",
            path=path,
            line=line,
        ) from None
    except RecursionError:
        raise InputError(
            f"this JSON {what} is nested too deeply to read", path=path, line=line
        ) from None


def json_safe(obj: Any) -> Any:
    """Replace NaN and infinities by None (JSON has no NaN) and tuples by lists, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, allow_nan=False)


def write_json(obj: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(dumps_json(obj) + "\n")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
