"""Run directories and their `manifest.json`.

Every command writes into a run directory (default `reports/<name>/`). The manifest records, for
each command run there, the command line, its configuration, seed, package versions, the git hash
of emf-bench, start and end times and the host, so any number in the directory can be traced back
to what produced it. Several commands may share one directory (`emf-bench run` does): each one
appends an entry to `invocations`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError
from emf_bench.storage import atomic_write_json, ensure_dir

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
REPORTS_ROOT = Path("reports")

# Versions worth recording; read from package metadata, so nothing heavy is imported.
_TRACKED_PACKAGES = (
    "emf-bench", "torch", "transformers", "numpy", "scipy", "pillow", "pandas",
    "sentence-transformers", "scikit-learn", "open_clip_torch", "diffusers", "accelerate",
    "datasets", "huggingface_hub", "safetensors", "modelscope", "mmdet",
)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any] | None:
    """The commit of the emf-bench source tree, when it runs from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def host_info() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


# The version of the results files' layout (scores.json, summary.json, probe.json; see
# docs/results.md): a reader takes files of this version or older.
RESULTS_SCHEMA = 1


def provenance(**context: Any) -> dict[str, Any]:
    """Where a results file came from, so that it tells how to reproduce it when read on its
    own: emf-bench's version and git commit (dirty or not), the packages, the host, the command
    line, and `context` (seed, device, precision, resolved model revisions; None left out)."""
    from emf_bench import __version__

    return {"schema_version": RESULTS_SCHEMA, "tool": "emf-bench", "version": __version__,
            "git": git_state(), "packages": package_versions(), "host": host_info(),
            "argv": sys.argv[1:], "created": utc_now(),
            **{k: v for k, v in context.items() if v is not None}}


def default_run_dir(name: str) -> Path:
    return REPORTS_ROOT / name


@dataclass
class RunDir:
    """A run directory; `invocation()` records one command's run in its manifest."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | str, create: bool = True) -> RunDir:
        path = Path(path)
        if create:
            ensure_dir(path, "run directory")
        else:
            from emf_bench.inputs import existing_dir

            existing_dir(path, "run directory")
        try:
            manifest = read_manifest(path) if (path / MANIFEST).exists() else {}
        except CorruptManifest as err:
            if not create:
                raise
            aside = path / f"{MANIFEST}.unreadable-{_dt.datetime.now():%Y%m%d-%H%M%S}"
            os.replace(path / MANIFEST, aside)
            from emf_bench.progress import note

            note(f"{str(err).split(';')[0]}: kept as {aside.name}, a new manifest starts "
                 f"(results in the run directory are untouched)")
            manifest = {}
        return cls(path=path, manifest=manifest)

    def _write(self) -> None:
        from emf_bench import distributed

        if distributed.is_main():  # under torchrun every rank records; rank 0 writes
            atomic_write_json(self.path / MANIFEST, self.manifest)

    @contextlib.contextmanager
    def invocation(
        self, command: str, config: dict[str, Any], seed: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Record a command run: `running` at start, then `finished`, `failed` or `interrupted`."""
        if not self.manifest:
            self.manifest = {
                "format_version": FORMAT_VERSION,
                "tool": "emf-bench",
                "created": utc_now(),
                "invocations": [],
            }
        entry: dict[str, Any] = {
            "command": command,
            "argv": sys.argv[1:],
            "config": config,
            "seed": seed,
            "versions": package_versions(),
            "git": git_state(),
            "host": host_info(),
            "started": utc_now(),
            "finished": None,
            "status": "running",
        }
        self.manifest["invocations"].append(entry)
        self._write()
        try:
            yield entry
        except KeyboardInterrupt:
            entry.update(status="interrupted", finished=utc_now())
            self._write()
            raise
        except BaseException as err:
            entry.update(status="failed", finished=utc_now(), error=str(err).splitlines()[0:1])
            self._write()
            raise
        entry.update(status="finished", finished=utc_now())
        self._write()


class CorruptManifest(EmfBenchError):
    """A manifest that is not JSON (a torn write by another tool, an edit)."""


def read_manifest(path: Path | str) -> dict[str, Any]:
    """Read and check a run directory's manifest (one clear line on anything wrong)."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise EmfBenchError(f"{path} is not an emf-bench run directory (no {MANIFEST})") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptManifest(f"corrupt manifest {file}: {err}; a command writing to this run "
                              f"directory keeps it aside and starts a new one") from err
    if not isinstance(manifest, dict) or manifest.get("tool") != "emf-bench":
        raise EmfBenchError(f"{file} is not an emf-bench manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EmfBenchError(
            f"{file} has format version {version!r}, newer than this emf-bench understands "
            f"({FORMAT_VERSION}); upgrade emf-bench to read it"
        )
    return manifest
