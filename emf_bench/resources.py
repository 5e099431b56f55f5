"""Cards shipped with emf-bench: `encoders/` and `benchmarks/` at the repository top.

A wheel carries them as `emf_bench/_cards/<kind>/`; a source checkout (editable install) reads
them from the repository. Both resolve through `cards_dir`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError

CARD_KINDS = ("encoders", "benchmarks")


def cards_dir(kind: str) -> Path:
    if kind not in CARD_KINDS:
        raise ValueError(f"unknown card kind {kind!r}")
    package = Path(__file__).resolve().parent
    for candidate in (package / "_cards" / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    raise EmfBenchError(f"emf-bench's {kind} cards are missing from {package}; reinstall it")


def read_yaml(path: Path) -> Any:
    import yaml

    from emf_bench.inputs import existing_file

    try:
        return yaml.safe_load(existing_file(path, "YAML file").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise EmfBenchError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


@functools.lru_cache(maxsize=1)
def paper_reference() -> dict[str, Any]:
    """The EMF paper's published values (shown as "paper reference", never as measurements)."""
    return read_yaml(cards_dir("benchmarks") / "paper_reference.yaml")
