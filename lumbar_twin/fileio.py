"""Atomic writes and content hashes: nothing half-written ever reaches an output folder."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from lumbar_twin.errors import InputError


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_umask() -> int:
    """The process's umask, read once at import: setting it to read it back (os.umask) would
    leave other threads' new files unmasked for a moment (the clinic page serves threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place. The file gets
    the mode a plain open() would give it (0666 less the umask), not mkstemp's private 0600,
    so that a service reading the outputs can."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def check_output_folder(path: str | Path) -> Path:
    """`path` as an output folder: it may exist as a folder or not at all, and whatever of its
    parents exist must be folders. InputError naming it otherwise (checked before long work)."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "" if part == path else f" (its parent {part} is a file)"
            raise InputError(path, f"is not a folder{where}: give a folder to write the outputs in")
    return path


@contextlib.contextmanager
def staged_directory(final: str | Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; on success move its files into `final`.

    Every file lands by an atomic rename, and if anything fails while the files are being
    made, `final` is left exactly as it was (no partial outputs).
    """
    final = check_output_folder(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging.", dir=final.parent))
    try:
        yield stage
        final.mkdir(exist_ok=True)
        for item in sorted(stage.iterdir()):
            os.replace(item, final / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, turning every expected fault into an InputError naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, expected a JSON file") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a text file") from None
