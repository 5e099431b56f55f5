"""Atomic writes: every file emf-bench produces goes through these helpers.

A write lands under a temporary name in the destination's directory and is renamed into place,
so a reader (or a resumed run) sees either the old file or the complete new one, never half.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_dir(path: Path, what: str = "directory") -> Path:
    """Create `path` (and parents), turning OS errors into one clear user-facing line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise EmfBenchError(f"cannot create {what} {path}: a file is in the way") from err
    except OSError as err:
        raise EmfBenchError(f"cannot create {what} {path}: {err.strerror or err}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise EmfBenchError(f"cannot write to {what} {path}: permission denied")
    return path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    For libraries that insist on writing to a path themselves (PIL, pyarrow, safetensors).
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; land like a plain open() would
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


@contextlib.contextmanager
def atomic_directory(path: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Build a whole directory under a temporary name and move it into place at the end.

    An existing non-empty `path` is an error unless `overwrite`; then it is replaced only once
    the new one is complete, so an interrupted export never leaves a half-written folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EmfBenchError(f"output {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise EmfBenchError(
            f"output directory {path} is not empty (pass --overwrite to replace it)")
    ensure_dir(path.parent, "parent directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_save_png(path: Path | str, image: Any) -> Path:
    """Save an (H, W, 3) uint8 array or a PIL image as PNG, atomically."""
    from PIL import Image

    if not hasattr(image, "save"):
        image = Image.fromarray(image)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def write_shard(folder: Path | str, tensors: dict[str, Any], keys: list[str],
                metadata: dict[str, str] | None = None) -> Path:
    """A new append-only safetensors shard in `folder` (atomically), its rows named by `keys`
    in the metadata: the caches' unit of work (text/cache.py, probe/image_cache.py)."""
    import time
    import uuid

    from safetensors.torch import save_file

    path = Path(folder) / f"shard-{time.time_ns()}-{uuid.uuid4().hex[:8]}.safetensors"
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), **(metadata or {})})
    return path


def read_shards(folder: Path | str, what: str) -> Iterator[tuple[Path, list[str], set[str]]]:
    """(shard, its row keys, its tensor names) for every readable shard in `folder`, oldest
    first; an unreadable shard is skipped with a warning, never trusted."""
    import warnings

    from safetensors import safe_open

    for shard in sorted(Path(folder).glob("shard-*.safetensors")):
        try:
            with safe_open(str(shard), "pt") as f:
                keys = json.loads((f.metadata() or {})["keys"])
                names = set(f.keys())
        except Exception as err:  # torn, truncated or foreign files
            warnings.warn(f"skipping unreadable {what} shard {shard}: {err}", stacklevel=3)
            continue
        yield shard, keys, names
