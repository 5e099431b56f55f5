"""User-given paths checked for what they must be, with one line that says what is wrong, and
the plain input files several commands read (prompt folders).

A file where a folder belongs (or the reverse) is said as such, never as "does not exist"; an
output file must have its format's extension and a folder to land in (only a run directory is
created with its parents).
"""

from __future__ import annotations

from pathlib import Path

from emf_bench.errors import EmfBenchError


def existing_file(path: Path | str, what: str) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise EmfBenchError(f"{what} {path} is a folder; a file is expected")
    if not path.exists():
        raise EmfBenchError(f"{what} {path} does not exist")
    return path


def existing_dir(path: Path | str, what: str) -> Path:
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise EmfBenchError(f"{what} {path} is a file; a folder is expected")
    if not path.exists():
        raise EmfBenchError(f"{what} {path} does not exist")
    return path


def output_file(path: Path | str, what: str, suffixes: tuple[str, ...]) -> Path:
    """A file to write: the right extension, not a folder, in a folder that exists."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise EmfBenchError(f"{what} must be a {' or '.join(suffixes)} file, got {path}")
    if path.is_dir():
        raise EmfBenchError(f"{what} {path} is a folder; a file is expected")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise EmfBenchError(f"{what} {path}: {parent} is a file, not a folder")
    if not parent.exists():
        raise EmfBenchError(f"{what} {path}: folder {parent} does not exist (create it first)")
    return path


def output_dir(path: Path | str, what: str) -> Path:
    """A folder to create (or fill): not a file, its parent a folder that exists."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise EmfBenchError(f"{what} {path} is a file; a folder is expected")
    parent = path.parent
    if not path.exists() and parent.exists() and not parent.is_dir():
        raise EmfBenchError(f"{what} {path}: {parent} is a file, not a folder")
    if not path.exists() and not parent.exists():
        raise EmfBenchError(f"{what} {path}: folder {parent} does not exist (create it first)")
    return path


def read_prompt_folder(folder: Path | str, what: str = "prompt folder") -> dict[str, str]:
    """DPG-Bench-style prompts: one `<item_id>.txt` per prompt, whitespace collapsed; an empty
    or unreadable file is named."""
    folder = existing_dir(folder, what)
    prompts = {}
    for path in sorted(folder.glob("*.txt")):
        try:
            text = " ".join(path.read_text(encoding="utf-8").split())
        except (OSError, UnicodeDecodeError) as err:
            raise EmfBenchError(f"cannot read prompt file {path}: {err}") from None
        if not text:
            raise EmfBenchError(f"prompt file {path} is empty")
        prompts[path.stem] = text
    if not prompts:
        raise EmfBenchError(f"{what} {folder} has no .txt prompt files")
    return prompts
