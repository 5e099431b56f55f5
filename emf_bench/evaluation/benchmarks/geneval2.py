"""GenEval 2 as a benchmark (`--benchmark geneval2 --geneval2-data geneval2_data.jsonl`, and the
world's version `world-geneval2`, answered by the world's oracle: world/geneval2.py): one
image a unit, scored by a chat VLM's answer probabilities (Soft-TIFA AM and GM, TIFA, VQAScore;
evaluation/geneval2.py has the rules, evaluation/vlm.py the model).

Images are saved as `images/<index:05>/<sample:05>.png` with `image_map.json` beside them: the
official script's prompt-to-image-path map (the first sample of each prompt). Every image is an
instance: with one image a prompt (the official setting) the scores are the official ones; with
more, each prompt's images count alike. Rows keep every question's probability, so any score
can be recomputed from them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import geneval2 as rules_
from emf_bench.evaluation.benchmarks import (
    BackendOptions,
    Scorer,
    Sources,
    Unit,
    first_items,
    image_seed,
)
from emf_bench.storage import atomic_save_png, atomic_write_json


@dataclass
class GenEval2Benchmark:
    name: str
    items: list[rules_.Item]
    source: str
    compat: str = "corrected"
    subset: dict[str, Any] | None = None

    needs = "vqa"

    @classmethod
    def load(cls, name: str, sources: Sources) -> GenEval2Benchmark:
        if name.startswith("world-"):
            from emf_bench.world import World, WorldConfig
            from emf_bench.world.geneval2 import world_items

            return cls(name, world_items(World(WorldConfig.from_dict(sources.world))),
                       "emf-bench world")
        path = getattr(sources, "geneval2_data", None)
        if path is None:
            raise EmfBenchError(f"--benchmark {name} needs --geneval2-data PATH (GenEval 2's "
                                f"geneval2_data.jsonl)")
        return cls(name, rules_.read_data(path), str(path),
                   "official" if sources.official_compat else "corrected")

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> dict[str, Any]:
        return {"benchmark": self.name, "suite_source": self.source,
                "official_compat": self.compat == "official", "subset": self.subset}

    def select(self, tags: list[str] | None, limit: int | None) -> GenEval2Benchmark:
        """The first `limit` prompts (no task tags)."""
        return first_items(self, tags, limit)

    def item(self, index: int) -> dict[str, Any]:
        it = self.items[index]
        return {"prompt": it.prompt, "atom_count": it.atom_count, "skills": list(it.skills),
                "vqa_list": [list(p) for p in zip(it.questions, it.answers, strict=True)],
                "compat": self.compat}

    # -- images -----------------------------------------------------------------------------

    def _path(self, index: int, sample: int) -> str:
        return f"images/{index:05d}/{sample:05d}.png"

    def plan(self, indices: list[int], per_prompt: int, seed: int) -> list[Unit]:
        return [Unit(i, n, [self.items[i].prompt], [image_seed(seed, i, n)], self._path(i, n))
                for i in indices for n in range(per_prompt)]

    def compose(self, images: list[np.ndarray]) -> np.ndarray:
        (image,) = images
        return image

    def save(self, images_dir: Path, units: list[Unit]) -> None:
        for u in units:
            atomic_save_png(Path(images_dir) / f"{u.index:05d}" / f"{u.sample:05d}.png",
                            u.image)
        root = Path(images_dir)
        mapping = {self.items[i].prompt: str(root / f"{i:05d}" / "00000.png")
                   for i in sorted({u.index for u in units if u.sample == 0})}
        previous = root / "image_map.json"
        if previous.exists():
            with contextlib.suppress(OSError, ValueError):  # unreadable: rewritten whole
                mapping = {**json.loads(previous.read_text(encoding="utf-8")), **mapping}
        atomic_write_json(previous, mapping)

    def read(self, root: Path, indices: list[int]) -> list[Unit]:
        """Units from `images/<index>/<sample>.png`, or else from the official layout: an
        `image_map.json` mapping each prompt to one image path (relative to the map's folder
        or absolute). A map that lacks prompts is refused, naming how many and which."""
        root = Path(root)
        if not (root / "images").is_dir() and (root / "image_map.json").exists():
            return self._read_map(root / "image_map.json", indices)
        out = []
        for index in indices:
            folder = Path(root) / "images" / f"{index:05d}"
            files = sorted(folder.glob("*.png")) if folder.is_dir() else []
            if not files:
                raise EmfBenchError(f"{folder} has no images for GenEval 2 prompt {index} "
                                    f"({self.items[index].prompt!r})")
            out += [Unit(index, n, [self.items[index].prompt], [None], self._path(index, n),
                         file=path) for n, path in enumerate(files)]
        return out

    def _read_map(self, file: Path, indices: list[int]) -> list[Unit]:
        try:
            mapping = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EmfBenchError(f"cannot read GenEval 2 image map {file}: {err}") from None
        if not isinstance(mapping, dict):
            raise EmfBenchError(f"GenEval 2 image map {file} must map prompts to image paths")
        missing = [self.items[i].prompt for i in indices if self.items[i].prompt not in mapping]
        if missing:
            raise EmfBenchError(
                f"GenEval 2 image map {file} lacks {len(missing)} of {len(indices)} prompts "
                f"(e.g. {missing[0]!r}); a partial map is not the benchmark's score: complete "
                f"it, or run --limit for a labelled part")
        return [Unit(i, 0, [self.items[i].prompt], [None], self._path(i, 0),
                     file=(file.parent / str(mapping[self.items[i].prompt])).expanduser())
                for i in indices]

    # -- scores -----------------------------------------------------------------------------

    def score(self, unit: Unit, scorer: Scorer, rules: Any,
              base: dict[str, Any]) -> list[dict[str, Any]]:
        it = self.items[unit.index]
        row = {**base, "prompt_index": unit.index, "sample": unit.sample, "seed": unit.seeds[0],
               "prompt": it.prompt, "atom_count": it.atom_count, "skills": list(it.skills),
               "image": unit.path}
        if isinstance(unit.image, EmfBenchError):
            n = len(it.questions)
            return [{**row, "error": str(unit.image), "soft": [0.0] * n, "hard": [False] * n,
                     "vqascore": 0.0}]
        soft, hard = scorer.vqa.answer(unit.image, it.questions, it.answers, self.compat)
        return [{**row, "soft": soft, "hard": hard,
                 "vqascore": scorer.vqa.vqascore(unit.image, it.prompt)}]

    def summarize(self, rows: list[dict[str, Any]], scorer: Scorer) -> dict[str, Any]:
        instances = [rules_.Item(n, r["prompt"], r["atom_count"], ("?",) * len(r["soft"]),
                                 ("",) * len(r["soft"]), tuple(r["skills"]))
                     for n, r in enumerate(rows)]
        out = rules_.summarize(instances, {n: r["soft"] for n, r in enumerate(rows)},
                               {n: r["hard"] for n, r in enumerate(rows)},
                               {n: r["vqascore"] for n, r in enumerate(rows)})
        out.pop("missing")
        # the headline, as every benchmark's summary has one: GenEval 2's own (Soft-TIFA GM)
        out.update(overall=out["soft_tifa_gm"], images=len(rows),
                   prompts=len({r["prompt_index"] for r in rows}),
                   of=self.subset["of"] if self.subset else len(self.items),
                   compat=self.compat)
        return out

    # the report plots these metrics by part: (metric prefix, the parts, the value)
    breakdowns = (("skill", "skill", "mean answer probability x 100"),
                  ("atoms", "atomicity (atoms in the prompt)", "Soft-TIFA GM x 100"))

    @staticmethod
    def metrics(summary: dict[str, Any]) -> dict[str, float]:
        return {"overall": summary["soft_tifa_gm"], "soft_tifa_am": summary["soft_tifa_am"],
                "tifa": summary["tifa"], "vqascore": summary["vqascore"],
                **{f"skill {k}": v for k, v in summary["skills"].items()},
                **{f"atoms {k}": v for k, v in summary["atomicity"].items()}}

    @staticmethod
    def table(summaries: dict[int, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
        skills = list(next(iter(summaries.values()))["skills"])
        rows = [[f"{s['soft_tifa_gm']:.1f}", f"{s['soft_tifa_am']:.1f}", f"{s['tifa']:.1f}",
                 f"{s['vqascore']:.1f}", *(f"{s['skills'].get(k, float('nan')):.1f}"
                                           for k in skills)]
                for s in summaries.values()]
        return ["Soft-TIFA GM", "Soft-TIFA AM", "TIFA", "VQAScore", *skills], rows

    @staticmethod
    def intervals(rows: list[dict[str, Any]]) -> dict[str, Any]:
        """95% bootstrap interval of Soft-TIFA GM (x 100) over prompts."""
        from emf_bench.evaluation.benchmarks.geneval import bootstrap_geneval

        scored = [{"tag": "geneval2", "prompt_index": r["prompt_index"],
                   "correct": rules_.soft_tifa(r["soft"])[1]} for r in rows]
        ci = bootstrap_geneval(scored)
        return {**{k: 100 * ci[k] for k in ("score", "low", "high")}, "tasks": {}} if ci else {}

    def make_scorer(self, options: BackendOptions, world: dict[str, Any]) -> Scorer:
        from emf_bench.evaluation.vlm import QWEN3_VL, ChatVLM

        if self.name.startswith("world-") and options.vqa in (None, "world-oracle"):
            from emf_bench.world import World, WorldConfig
            from emf_bench.world.geneval2 import WorldOracleVLM

            return Scorer(vqa=WorldOracleVLM(World(WorldConfig.from_dict(world)).detector()))
        spec = options.vqa or f"vlm:{QWEN3_VL}"
        if not spec.startswith("vlm:"):
            raise EmfBenchError(f"--vqa {spec}: GenEval 2 is scored by a chat VLM; use "
                                f"--vqa vlm:<model id or folder> (default vlm:{QWEN3_VL})")
        vlm = ChatVLM(spec[4:], options.device)
        # GenEval 2's own score: its VLM and its token rule (the corrected rule is not)
        vlm.official = vlm.official and self.compat == "official"
        return Scorer(vqa=vlm)
