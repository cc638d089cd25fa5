"""Bundle I/O: the only place iron reads or writes config.json and exec process files.

Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
directory): a crash or a full disk leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import os

from .errors import IronError
from .jsonio import dumps as json_dumps, loads


def bundle_dir(path: str) -> str:
    """An absolute bundle path that is a real directory (not a symlink to one)."""
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise IronError("bundle not found", file=path, expected="an OCI bundle directory") from None
    except OSError as err:
        raise IronError(f"cannot stat bundle: {err.strerror}", file=path) from err
    import stat
    if stat.S_ISLNK(st.st_mode):
        raise IronError("bundle path is a symlink", file=path,
                        expected="the bundle directory itself, not a link to it")
    if not stat.S_ISDIR(st.st_mode):
        raise IronError("bundle path is not a directory", file=path, expected="an OCI bundle directory")
    return path


def read_json(path: str, what: str) -> tuple[bytes, dict]:
    """The file's exact bytes (to compare and to leave untouched) and its parsed object."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise IronError(f"{what} not found", file=path) from None
    except OSError as err:
        raise IronError(f"cannot read {what}: {err.strerror}", file=path) from err
    if not raw.strip():
        raise IronError(f"{what} is empty", file=path, expected="a JSON object")
    try:
        value = loads(raw)
    except ValueError as err:
        raise IronError(f"{what} is not valid JSON: {err}", file=path) from err
    if not isinstance(value, dict):
        raise IronError(f"{what} is not a JSON object", file=path, expected="a JSON object",
                        got=type(value).__name__)
    return raw, value


def read_config(bundle: str) -> tuple[str, bytes, dict]:
    path = os.path.join(bundle, "config.json")
    raw, spec = read_json(path, "config.json")
    return path, raw, spec


def dumps(value: dict) -> bytes:
    return json_dumps(value).encode() + b"\n"


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permission bits."""
    folder = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o644
    tmp = os.path.join(folder, f".{os.path.basename(path)}.iron-{os.getpid()}")
    _clear_stale_temps(folder, os.path.basename(path))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise IronError(f"cannot write: {err.strerror}; the original is unchanged", file=path) from err


def _clear_stale_temps(folder: str, name: str) -> None:
    """Remove temp files an iron killed mid-write left behind: its pid is gone, or is this
    process's (then it cannot be a live writer's, and O_EXCL would refuse the name)."""
    prefix = f".{name}.iron-"
    try:
        entries = [e for e in os.listdir(folder) if e.startswith(prefix) and _is_pid(e[len(prefix):])]
    except OSError:
        return
    for entry in entries:
        pid = int(entry[len(prefix):])
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue                      # a live process: perhaps another iron writing
            except ProcessLookupError:
                pass
            except OSError:
                continue
        try:
            os.unlink(os.path.join(folder, entry))
        except OSError:
            pass


def _is_pid(text: str) -> bool:
    return 0 < len(text) <= 7 and text.isascii() and text.isdigit()   # pid_max is at most 2**22
