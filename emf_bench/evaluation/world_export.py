"""Export the world's suites with ground-truth renders in the official layouts.

The result is a known-correct input for any GenEval or DPG-Bench scorer: the world's exact
backends must give 1.0 on every GenEval task and 100 on world-DPG for it, and images written by
other generators in the same layout are scored the same way.

    <out>/geneval/evaluation_metadata.jsonl      the suite, GenEval's metadata schema
    <out>/geneval/images/<index:05>/...          metadata.jsonl + samples/<n:05>.png
    <out>/dpg/prompts/<item_id>.txt              one prompt per file, as DPG-Bench ships them
    <out>/dpg/dpg_bench.csv                      questions, DPG-Bench CSV schema
    <out>/dpg/images/<item_id>.png               2x2 grid of four ground-truth renders
    <out>/world.json                             the world's configuration
    <out>/training/metadata.jsonl + NNNNNN.png   (with `training`) the world's training scenes
                                                 as a Hugging Face `imagefolder` with captions
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emf_bench.evaluation.layouts import write_dpg_grid, write_dpg_questions, write_geneval_prompt
from emf_bench.progress import track
from emf_bench.storage import atomic_write_json, atomic_write_jsonl, atomic_write_text
from emf_bench.world import World, parse


def ground_truth_images(world: World, meaning_seed: list[int], meaning, count: int,
                        size: int) -> list[np.ndarray]:
    """`count` renders of independent scenes of `meaning`, each seeded by (seed..., n)."""
    return [world.render(world.sample_scene(meaning, np.random.default_rng([*meaning_seed, n])),
                         size) for n in range(count)]


def export_world_suites(world: World, out: Path, images_per_prompt: int = 4,
                        size: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Write both suites under `out` (an existing, empty directory); return a summary."""
    size = size or world.config.canvas
    atomic_write_json(out / "world.json", world.config.to_dict())

    suite = world.geneval_suite()
    atomic_write_jsonl(out / "geneval" / "evaluation_metadata.jsonl", suite)
    for index, row in enumerate(track(suite, "world-GenEval ground truth")):
        images = ground_truth_images(world, [seed, 0, index], parse(row["prompt"]),
                                     images_per_prompt, size)
        write_geneval_prompt(out / "geneval" / "images", index, row, images)

    dense = world.dense_suite()
    for item_id, prompt in dense.prompts.items():
        atomic_write_text(out / "dpg" / "prompts" / f"{item_id}.txt", prompt + "\n")
    write_dpg_questions(out / "dpg" / "dpg_bench.csv", dense.questions)
    for k, (item_id, meaning_id) in enumerate(
            track(list(dense.meaning_ids.items()), "world-DPG ground truth")):
        meaning = world.catalogue[meaning_id].meaning
        write_dpg_grid(out / "dpg" / "images", item_id,
                       ground_truth_images(world, [seed, 1, k], meaning, 4, size))
    return {
        "geneval_prompts": len(suite),
        "geneval_images": len(suite) * images_per_prompt,
        "dpg_prompts": len(dense.prompts),
        "dpg_questions": len(dense.questions),
        "image_size": size,
    }


def export_training_set(world: World, out: Path, size: int, seed: int = 0) -> dict[str, Any]:
    """The first `size` training examples of the world (those `train-probe --seed <seed>
    --train-size <size>` learns from), as an `imagefolder` at `out`: a probe trained on it with
    `--data` learns what a probe trained on the world learns."""
    from PIL import Image

    from emf_bench.storage import atomic_path

    examples = world.training_set(size, seed=seed)
    rows = []
    for i in track(range(size), "world training scenes", total=size):
        example = examples[i]
        name = f"{i:06d}.png"
        with atomic_path(out / name) as tmp:
            Image.fromarray(world.render(example.scene)).save(tmp, format="PNG")
        rows.append({"file_name": name, "text": example.caption, "task": example.task})
    atomic_write_jsonl(out / "metadata.jsonl", rows)
    return {"training_images": size, "training_seed": seed}
