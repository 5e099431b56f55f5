"""`emf-bench world preview | export`: look at the synthetic world and export its suites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emf_bench.cli.options import Overwrite, Seed, world_options

world_app = typer.Typer(
    help="The synthetic shapes world: preview scenes with captions, export suites with "
    "ground-truth renders in the official GenEval and DPG-Bench layouts.",
    no_args_is_help=True,
)

PREVIEW_SPLITS = ("train", "eval")


@world_app.command("preview")
@world_options
def preview(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "world-preview.png"),
    count: Annotated[int, typer.Option("--count", "-n", help="Number of scenes.")] = 16,
    split: Annotated[str, typer.Option(
        "--split", help="train: training captions; eval: evaluation prompts (held-out wording) "
        "with ground-truth scenes.")] = "train",
    view_size: Annotated[int | None, typer.Option(
        "--view-size", help="Tile side in pixels \\[default: 128].", show_default=False)] = None,
    columns: Annotated[int | None, typer.Option("--columns", help="Tiles per row.",
                                                show_default=False)] = None,
    seed: Seed = 0,
    world=None,
) -> None:
    """Write a PNG grid of world scenes, each under the caption it shows."""
    from emf_bench.errors import EmfBenchError, unknown_name

    if split not in PREVIEW_SPLITS:
        raise unknown_name("preview split", split, PREVIEW_SPLITS)
    if not 1 <= count <= 1024:
        raise EmfBenchError(f"--count must be 1 to 1024, got {count}")
    from emf_bench.inputs import output_file

    output_file(out, "--out", (".png",))
    config = world
    view_size = view_size or config.view_size
    if view_size < 8:
        raise EmfBenchError(f"--view-size must be at least 8, got {view_size}")

    import numpy as np

    from emf_bench.storage import atomic_path
    from emf_bench.world import World, parse
    from emf_bench.world.preview import caption_grid

    world = World(config)
    if split == "train":
        examples = [world.training_set(count, seed)[i] for i in range(count)]
        captions = [e.caption for e in examples]
        images = [world.render(e.scene, view_size) for e in examples]
    else:
        captions = _eval_prompts(world, count, seed)
        rng = np.random.default_rng(seed)
        images = [world.render(world.sample_scene(parse(c), rng), view_size) for c in captions]
    grid = caption_grid(images, captions, columns)
    with atomic_path(out) as tmp:
        grid.save(tmp, format="PNG")
    typer.echo(f"wrote {out} ({count} {split} scenes, {view_size}px tiles)")


def _eval_prompts(world, count: int, seed: int) -> list[str]:
    """`count` evaluation prompts, round-robin over the GenEval tasks and the dense suite."""
    import numpy as np

    by_task: dict[str, list[str]] = {}
    for row in world.geneval_suite():
        by_task.setdefault(row["tag"], []).append(row["prompt"])
    by_task["dense"] = list(world.dense_suite().prompts.values())
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(p)) for p in by_task.values() if p]
    prompts: list[str] = []
    while len(prompts) < count and any(pools):
        for pool in pools:
            if pool and len(prompts) < count:
                prompts.append(str(pool.pop()))
    return prompts


@world_app.command("export")
@world_options
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to create.")],
    images_per_prompt: Annotated[int, typer.Option(
        "--images-per-prompt", help="GenEval samples per prompt (GenEval uses 4).")] = 4,
    size: Annotated[int | None, typer.Option(
        "--size", help="Render size in pixels \\[default: the canvas].",
        show_default=False)] = None,
    training: Annotated[int, typer.Option(
        "--training", help="Also write the first N training scenes (those train-probe "
        "--seed S learns from) to <out>/training/ as an imagefolder with captions "
        "(metadata.jsonl), for train-probe --data.")] = 0,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    world=None,
) -> None:
    """Export world-GenEval and world-DPG with ground-truth renders in the official layouts."""
    from emf_bench.errors import EmfBenchError

    if not 1 <= images_per_prompt <= 64:
        raise EmfBenchError(f"--images-per-prompt must be 1 to 64, got {images_per_prompt}")
    if training < 0:
        raise EmfBenchError(f"--training is a number of scenes, got {training}")
    if size is not None and size < 8:
        raise EmfBenchError(f"--size must be at least 8, got {size}")
    from emf_bench.inputs import output_dir

    output_dir(out, "--out")
    config = world

    from emf_bench.evaluation.world_export import export_training_set, export_world_suites
    from emf_bench.rundir import RunDir
    from emf_bench.storage import atomic_directory
    from emf_bench.world import World

    world = World(config)
    settings = {"world": config.to_dict(), "images_per_prompt": images_per_prompt,
                "size": size or config.canvas, "out": str(out), "training": training}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        run = RunDir.open(tmp)
        with run.invocation("world export", settings, seed) as entry:
            summary = export_world_suites(world, tmp, images_per_prompt, size, seed)
            if training:
                summary.update(export_training_set(world, tmp / "training", training, seed))
            entry["summary"] = summary
    typer.echo(
        f"wrote {out}: {summary['geneval_prompts']} world-GenEval prompts "
        f"({summary['geneval_images']} images), {summary['dpg_prompts']} world-DPG prompts "
        f"({summary['dpg_questions']} questions)" + (
            f", {training} training scenes in {out / 'training'}" if training else ""))
