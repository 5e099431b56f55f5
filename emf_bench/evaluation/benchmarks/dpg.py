"""DPG-Bench as a benchmark: prompts and questions (official files or the world's dense suite),
a 2x2 grid of four tiles a unit, each tile's questions answered by a VQA backend and scored
under DPG-Bench's rules (`evaluation.dpg`): one result row per tile."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import dpg as rules_
from emf_bench.evaluation.benchmarks import (
    BackendOptions,
    Scorer,
    Sources,
    Unit,
    first_items,
    image_seed,
)
from emf_bench.evaluation.layouts import dpg_grid, dpg_grid_file
from emf_bench.storage import atomic_save_png

TILES = 4  # DPG-Bench always generates four images per prompt


@dataclass
class DPGBenchmark:
    name: str  # "dpg" or "world-dpg"
    items: list[rules_.DPGItem]
    source: str
    official_compat: bool = False
    subset: dict[str, Any] | None = None  # a part of the suite (--limit)

    needs = "vqa"

    @classmethod
    def load(cls, name: str, sources: Sources) -> DPGBenchmark:
        if name.startswith("world-"):
            from emf_bench.world import World, WorldConfig

            dense = World(WorldConfig.from_dict(sources.world)).dense_suite()
            questions: dict[str, list[rules_.DPGQuestion]] = {}
            for row in dense.questions:
                questions.setdefault(row["item_id"], []).append(rules_.DPGQuestion(
                    int(row["proposition_id"]),
                    tuple(int(p) for p in row["dependency"].split(",") if int(p) != 0),
                    row["tuple"], row["question_natural_language"]))
            return cls(name, rules_.build_items(dense.prompts, questions, name),
                       "emf-bench world")
        if sources.dpg_prompts is None or sources.dpg_csv is None:
            raise EmfBenchError(f"--benchmark {name} needs --dpg-prompts FOLDER and --dpg-csv "
                                f"FILE (DPG-Bench's prompts/ and dpg_bench.csv)")
        prompts = rules_.read_prompts(sources.dpg_prompts)
        questions = rules_.read_questions(sources.dpg_csv, sources.official_compat)
        items = rules_.build_items(prompts, questions, str(sources.dpg_csv),
                                   strict=not sources.official_compat)
        return cls(name, items, str(sources.dpg_prompts), sources.official_compat)

    def __len__(self) -> int:  # prompts
        return len(self.items)

    def describe(self) -> dict[str, Any]:
        return {"benchmark": self.name, "suite_source": self.source,
                "official_compat": self.official_compat, "subset": self.subset}

    def select(self, tags: list[str] | None, limit: int | None) -> DPGBenchmark:
        """The first `limit` prompts (no task tags)."""
        return first_items(self, tags, limit)

    def item(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {"item_id": item.item_id, "prompt": item.prompt, "unscorable": item.unscorable,
                "questions": [asdict(q) for q in item.questions]}

    # -- images -----------------------------------------------------------------------------

    def plan(self, indices: list[int], per_prompt: int, seed: int) -> list[Unit]:
        """One grid a prompt, whatever `per_prompt` says (DPG-Bench's rule)."""
        return [Unit(k, 0, [self.items[k].prompt] * TILES,
                     [image_seed(seed, k, tile) for tile in range(TILES)],
                     f"images/{self.items[k].item_id}.png") for k in indices]

    def compose(self, images: list[np.ndarray]) -> np.ndarray:
        return dpg_grid(images)

    def save(self, images_dir: Path, units: list[Unit]) -> None:
        for u in units:
            atomic_save_png(images_dir / f"{self.items[u.index].item_id}.png", u.image)

    def read(self, root: Path, indices: list[int]) -> list[Unit]:
        return [Unit(k, 0, [self.items[k].prompt] * TILES, [None] * TILES,
                     f"images/{self.items[k].item_id}.png",
                     file=dpg_grid_file(root, self.items[k].item_id))  # missing: the run stops
                for k in indices]

    # -- scores -----------------------------------------------------------------------------

    def score(self, unit: Unit, scorer: Scorer, rules: Any,
              base: dict[str, Any]) -> list[dict[str, Any]]:
        item = self.items[unit.index]
        base = {**base, "item_id": item.item_id, "prompt": item.prompt, "image": unit.path}
        try:
            if isinstance(unit.image, EmfBenchError):
                raise unit.image
            tiles = rules_.split_grid(unit.image, f"grid {item.item_id}")
        except EmfBenchError as err:
            return [{**base, "tile": t, "seed": None, "error": str(err), "answers": [],
                     "scores": [], "score": 0.0} for t in range(TILES)]
        questions = [q.question for q in item.questions]
        rows = []
        for t, tile in enumerate(tiles):
            answers = scorer.vqa.answer(np.ascontiguousarray(tile), questions)
            rows.append({**base, "tile": t, "seed": unit.seeds[t],
                         **rules_.score_tile(item.questions, answers)})
        return rows

    def summarize(self, rows: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
        tiles: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            tiles.setdefault(r["item_id"], []).append(r)
        for item_rows in tiles.values():
            item_rows.sort(key=lambda r: r["tile"])
        return rules_.summarize(self.items, tiles, self.official_compat)

    # the report plots these metrics by part: (metric prefix, the parts, the value)
    breakdowns = (("L1", "category", "score x 100"),)

    @staticmethod
    def metrics(summary: dict[str, Any]) -> dict[str, float]:
        return {"overall": summary["overall"],
                **{f"L1 {k}": v for k, v in summary["level1"].items()},
                **{f"L2 {k}": v for k, v in summary["level2"].items()}}

    @staticmethod
    def table(summaries: dict[int, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
        categories = list(next(iter(summaries.values()))["level1"])
        rows = [[f"{s['overall']:.2f}", *(f"{s['level1'].get(c, float('nan')):.1f}"
                                          for c in categories)]
                for s in summaries.values()]
        return ["overall x100", *categories], rows

    @staticmethod
    def intervals(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def make_scorer(self, options: BackendOptions, world: dict[str, Any]) -> Scorer:
        from emf_bench.evaluation.vqa import load_vqa

        name = options.vqa or ("world-oracle" if self.name.startswith("world-") else None)
        if name is None:
            raise EmfBenchError(f"--benchmark {self.name} needs --vqa mplug (DPG-Bench's "
                                f"mPLUG-large via modelscope), --vqa vlm:<chat VLM> or "
                                f"--vqa hf:<model>")
        return Scorer(vqa=load_vqa(name, world, options.device))
