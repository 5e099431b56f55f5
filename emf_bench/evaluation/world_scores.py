"""World-GenEval scores of a generator at several step counts (exact detector, GenEval rules).

A compact scorer for learning curves and quality checks; `emf-bench eval` runs the same rules
with layouts, resumption and reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emf_bench.evaluation.geneval import score_image, summarize


def world_geneval(generator, world, steps: Sequence[int], per_prompt: int = 4, seed: int = 0,
                  guidance: float = 1.0, tasks: Sequence[str] | None = None
                  ) -> dict[int, dict[str, Any]]:
    suite = [row for row in world.geneval_suite() if tasks is None or row["tag"] in tasks]
    prompts = [row["prompt"] for row in suite for _ in range(per_prompt)]
    seeds = [seed * 1_000_003 + i for i in range(len(prompts))]
    detector = world.detector()
    out = {}
    for k in steps:
        images = generator.generate(prompts, k, seeds, guidance)
        rows = [score_image(detector.detect(image), suite[i // per_prompt])
                for i, image in enumerate(images)]
        out[k] = summarize(rows)
    return out
