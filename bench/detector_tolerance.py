"""How much of a probe's world-GenEval score hangs on the exact detector's colour tolerance.

    python bench/detector_tolerance.py RUN_DIR MODEL [--tolerances 0.42,0.5,10] [--steps 1,4]

Scores a run's saved world-GenEval images (`RUN_DIR/evals/MODEL/world-geneval/steps-K/`,
MODEL as the folder names it, e.g. probe-class-label-meanflow) again with the world-exact
detector at several colour tolerances (the share of the smallest palette gap within which a
pixel takes a palette colour; 0.42 is the default, 0.5 the most that keeps colours apart, a
large value assigns every pixel its nearest colour) and GenEval's rules unchanged. A one-step
sample blends colours where the prompt names none; this shows what that costs per task.
Prints markdown rows: tolerance, step count, overall and each task.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from emf_bench.evaluation.geneval import TASKS, GenEvalRules, score_image, summarize
from emf_bench.world.config import WorldConfig
from emf_bench.world.detector import ExactDetector


def rescore(folder: Path, detector: ExactDetector, rules: GenEvalRules) -> dict[str, float]:
    metadata, rows = {}, []
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        index = row["prompt_index"]
        if index not in metadata:
            metadata[index] = json.loads(
                (folder / "images" / f"{index:05d}" / "metadata.jsonl").read_text())
        image = np.asarray(Image.open(folder / row["image"]).convert("RGB"))
        rows.append(score_image(detector.detect(image), metadata[index], rules=rules))
    summary = summarize(rows)
    return {"overall": summary["overall"], **summary["tasks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("model")
    parser.add_argument("--tolerances", default="0.42,0.5,10")
    parser.add_argument("--steps", default="1,4")
    args = parser.parse_args()
    settings = json.loads((args.run / "evals" / args.model / "world-geneval" /
                           "settings.json").read_text())
    scored = settings["scorer"]["detector"]  # the world's shapes and colours it was scored on
    config = WorldConfig.from_dict({"shapes": scored["shapes"], "colors": scored["colors"]})
    rules = GenEvalRules(**settings["settings"]["rules"])
    print("| colour tolerance | steps | overall | " + " | ".join(TASKS) + " |")
    print("|---" * (3 + len(TASKS)) + "|")
    for tolerance in (float(t) for t in args.tolerances.split(",")):
        detector = ExactDetector(config, color_tolerance=tolerance)
        for k in (int(s) for s in args.steps.split(",")):
            folder = args.run / "evals" / args.model / "world-geneval" / f"steps-{k}"
            s = rescore(folder, detector, rules)
            print(f"| {tolerance:g} | {k} | {s['overall']:.3f} | "
                  + " | ".join(f"{s[t]:.2f}" if t in s else "-" for t in TASKS) + " |")


if __name__ == "__main__":
    main()
