"""Pre-generated images in a benchmark's official layout (`evaluation.layouts`), from any
generator, as a drop-in generator. A `{steps}` in the path selects one folder per step count
(`runs/sana-{steps}step`); each benchmark reads its units from the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FolderGenerator:
    """Images someone else generated, read from an official layout (`official` stays False:
    the images are whatever the user's generator made; the label is about the scorer)."""

    kind = "folder"
    official = False

    def __init__(self, root: str | Path, name: str | None = None):
        self.pattern = str(root)
        self.name = name or f"images:{Path(self.pattern.split('{steps}')[0].rstrip('/-_')).name}"
        self.per_steps = "{steps}" in self.pattern
        if not self.per_steps:  # checked now, before a run directory is made
            from emf_bench.inputs import existing_dir

            existing_dir(self.pattern, "image folder")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "folder", "official": False, "path": self.pattern}

    def root(self, steps: int) -> Path:
        from emf_bench.inputs import existing_dir

        return existing_dir(self.pattern.replace("{steps}", str(steps)), "image folder")
