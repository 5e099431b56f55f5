"""`emf-bench train-probe` and `emf-bench generate`: MeanFlow probe generators per encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emf_bench.cli.options import (
    TRAINING,
    Common,
    FirstShare,
    FirstTasks,
    Overwrite,
    common_options,
    parse_steps,
    split_names,
    world_options,
)
from emf_bench.probe.config import TrainConfig as Defaults  # light: no torch until built
from emf_bench.probe.presets import PROBE_PRESETS

Steps = Annotated[str, typer.Option(
    "--steps", help="Comma-separated sampling step counts, e.g. 1,2,4,16.")]
Guidance = Annotated[float, typer.Option(
    "--guidance", help="Classifier-free guidance scale at sampling (1: none; batched "
    "conditional and null passes otherwise).")]


def probe_dir(run_path: Path, encoder: str, objective: str) -> Path:
    return run_path / "probes" / encoder / objective


def train_probe(
    encoder: Annotated[str, typer.Option("--encoder", "-e", help="Registered encoder name.",
                                         show_default=False)],
    objective: Annotated[str, typer.Option(
        "--objective", help="meanflow (one-step capable) or flow-matching (the baseline).")
    ] = Defaults.objective,
    budget: Annotated[str, typer.Option(
        "--budget", help="Training budget: steps (3000steps: the same probe on any machine) or "
        "a time (90s, 4m, 1.5h: what this machine manages in it).")] = Defaults.budget,
    size: Annotated[str, typer.Option(
        "--size", help=f"Probe size preset: {', '.join(PROBE_PRESETS)} (cpu: a U-Net for "
        "minutes on a laptop; cpu-layout: with layout maps, so the prompt can place objects; "
        "gpu-*: for a GPU).")] = Defaults.size,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Global batch size.")
                          ] = Defaults.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate.")] = Defaults.lr,
    conditioning: Annotated[str, typer.Option(
        "--conditioning", help="pooled (adaLN/FiLM), tokens (cross-attention) or both.")
    ] = Defaults.conditioning,
    schedule: Annotated[str, typer.Option(
        "--schedule", help="(t, r) schedule: emf (adaptive, linear), emf-cosine, or meanflow "
        "(fixed 25% r != t).")
    ] = Defaults.schedule,
    jvp: Annotated[str, typer.Option(
        "--jvp", help="du/dt strategy: auto (dual where the network has hand-written tangent "
        "rules, as the U-Net does, else func), dual, func (torch.func.jvp), autograd, "
        "fd.")] = Defaults.jvp,
    tangent: Annotated[str, typer.Option(
        "--tangent", help="The JVP's tangent in z: model (the probe's own instantaneous "
        "velocity: far less noise in the target, one more forward pass without gradients) or "
        "sample (the sample's velocity, as in the MeanFlow paper).")] = Defaults.tangent,
    warm_start: Annotated[float, typer.Option(
        "--warm-start", help="meanflow: budget share trained with flow matching first.")
    ] = Defaults.warm_start,
    ema_decay: Annotated[float, typer.Option(
        "--ema-decay", help="Decay of the EMA weights used for sampling.")] = Defaults.ema_decay,
    train_guidance: Annotated[float, typer.Option(
        "--train-guidance", help="meanflow: guidance scale trained into the target (1: none; "
        "sampling then takes one network evaluation per step).")] = Defaults.train_guidance,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="meanflow: start from this flow-matching probe (its time embedding "
        "initialises both of MeanFlow's), as EMF fine-tunes a pretrained flow model.",
        show_default=False)] = None,
    train_size: Annotated[int, typer.Option(
        "--train-size", help="World training scenes rendered for the probe.")
    ] = Defaults.train_size,
    data: Annotated[str | None, typer.Option(
        "--data", help="Train on your own images instead of the world: an image folder with "
        "metadata.jsonl or metadata.csv (file_name, text), a COCO captions .json (with "
        "--data-images), a datasets folder (save_to_disk) or hf:<id> (local Hub cache).",
        show_default=False)] = None,
    data_format: Annotated[str, typer.Option(
        "--data-format", help="auto, imagefolder, coco or datasets.")] = "auto",
    data_images: Annotated[Path | None, typer.Option(
        "--data-images", help="The image folder of a COCO captions file.",
        show_default=False)] = None,
    data_split: Annotated[str, typer.Option(
        "--data-split", help="The split of a datasets dataset.")] = "train",
    caption_column: Annotated[str | None, typer.Option(
        "--caption-column", help="The caption column \\[default: text, caption or prompt].",
        show_default=False)] = None,
    resolution: Annotated[int, typer.Option(
        "--resolution", help="--data: pixel side the images are centre-cropped and resized "
        "to (before --vae encodes them).")] = 32,
    vae: Annotated[str | None, typer.Option(
        "--vae", help="--data: train in the latents of this diffusers autoencoder (Hub id or "
        "local folder; AutoencoderKL or AutoencoderDC), computed once and cached; use a "
        "latent --size preset.", show_default=False)] = None,
    vae_revision: Annotated[str | None, typer.Option(
        "--vae-revision", help="Hub revision of --vae.", show_default=False)] = None,
    first_tasks: FirstTasks = None,
    first_share: FirstShare = None,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Save a checkpoint every N steps (and at the end).")
    ] = Defaults.checkpoint_every,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an unfinished probe.")
                      ] = False,
    quick_eval: Annotated[bool, typer.Option(
        "--quick-eval/--no-quick-eval", help="Score world-GenEval at 1, 2 and 4 steps after "
        "training (exact world detector; a few seconds).")] = True,
    overwrite: Overwrite = False,
    common: Common = None,
    world=None,
) -> None:
    """Train a MeanFlow (or flow-matching) probe generator conditioned on an encoder.

    The probe learns the world's training scenes (or your images, --data) from the encoder's
    features (through the feature cache) and lands in <run-dir>/probes/<encoder>/<objective>/.
    """
    from emf_bench.errors import EmfBenchError
    from emf_bench.probe.trainer import TrainConfig

    if resume and overwrite:
        raise EmfBenchError("--resume and --overwrite contradict each other; pick one")
    if init_from is not None and objective != "meanflow":
        raise EmfBenchError("--init-from starts a meanflow probe from a flow-matching one; "
                            "it needs --objective meanflow")
    config = TrainConfig(objective=objective, size=size, budget=budget, batch_size=batch_size,
                         lr=lr, conditioning=conditioning, schedule=schedule, jvp=jvp,
                         tangent=tangent, train_size=train_size, seed=common.seed,
                         checkpoint_every=checkpoint_every, precision=common.precision,
                         first_tasks=split_names(first_tasks or ""),
                         first_share=first_share or 0.0, warm_start=warm_start,
                         ema_decay=ema_decay, train_guidance=train_guidance)
    from emf_bench.probe.presets import check_space

    if data is None and (vae or data_images or caption_column):
        raise EmfBenchError("--vae, --data-images and --caption-column apply to --data")
    # an unknown preset, or one for the other space, fails here, before anything loads
    check_space(size, "latents" if vae else "pixels")
    card = common.registry().card(encoder).for_world(world.to_dict())

    from emf_bench import distributed
    from emf_bench.probe.trainer import ProbeTrainer
    from emf_bench.world import World

    distributed.init_from_env()
    run = common.run("probes")
    folder = probe_dir(run.path, card.name, objective)
    settings = {"encoder": card.name, "train": config.to_dict(), "world": world.to_dict(),
                "device": common.device, "init_from": str(init_from) if init_from else None,
                "probe_dir": str(folder)}
    world_obj = World(world)
    source = world_obj
    if data is not None:
        source = _user_data(data, data_format, data_images, data_split, caption_column,
                            resolution, vae, vae_revision, common.device, size)
        settings["data"] = source.record()["data"]
    with run.invocation("train-probe", settings, common.seed) as entry:
        trainer = ProbeTrainer(card, config, source, folder, common.cache(),
                               device=common.device, init_from=init_from,
                               threads=common.threads)
        summary = trainer.train(resume=resume, overwrite=overwrite)
        entry["result"] = {k: summary[k] for k in ("step", "seconds", "images")}
        scores = None
        if quick_eval and data is None and distributed.is_main():
            scores = _quick_eval(folder, world_obj, common)
            entry["quick_eval"] = scores
    if distributed.is_main():
        _print_summary(summary, folder, scores)


def _user_data(data: str, fmt: str, images: Path | None, split: str, caption_column: str | None,
               resolution: int, vae: str | None, vae_revision: str | None, device: str,
               size: str):
    """--data read and checked (captions, files), and the space it is learnt in."""
    from emf_bench.probe.data import UserData
    from emf_bench.probe.presets import check_space
    from emf_bench.probe.sources import read_source
    from emf_bench.probe.spaces import LatentSpace, PixelSpace
    from emf_bench.text.base import resolve_device

    source = read_source(data, fmt, images, caption_column, split)
    for note in source.notes:
        typer.echo(f"note: {note}", err=True)
    space = PixelSpace(resolution) if vae is None else LatentSpace(
        vae, resolution, vae_revision, device=resolve_device(device))
    check_space(size, space.kind, space.channels)
    return UserData(source, space)


def _quick_eval(folder: Path, world, common: Common) -> dict:
    from emf_bench.evaluation.world_scores import world_geneval
    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.storage import atomic_write_json

    generator = ProbeGenerator(folder, device=common.device, cache=common.cache(),
                               precision=common.precision)
    scores = world_geneval(generator, world, (1, 2, 4))
    result = {"benchmark": "world-geneval", "detector": "world-exact", "official": False,
              "generator": generator.describe(), "images_per_prompt": 4,
              "steps": {str(k): v for k, v in scores.items()}}
    atomic_write_json(folder / "quick_eval.json", result)
    return result


def _print_summary(summary: dict, folder: Path, scores: dict | None) -> None:
    from rich.table import Table

    from emf_bench.cli.options import results_console

    console = results_console()
    reused = " (already finished; reused)" if summary.get("reused") else ""
    hardware = summary.get("hardware") or {}
    how = f", {hardware['precision']} on {hardware['threads']} threads of {hardware['device']}" \
        if hardware else ""
    console.print(f"probe: {folder}{reused}: {summary['step']} steps, "
                  f"{summary['images']} images, {summary['seconds'] / 60:.1f} min{how}")
    if data := summary.get("data"):
        space = data["space"]
        where = f"{space['class']} latents {'x'.join(map(str, space['shape']))} of " \
            f"{space['vae']}" if space["kind"] == "latents" else "pixels"
        console.print(f"trained on {data['kind']} {data['location']}: {data['images']} images, "
                      f"{data['examples']} captions, {space['resolution']} px, {where}; "
                      f"evaluate it with emf-bench eval --model probe:{folder}")
    if scores is None:
        return
    trained = scores.get("generator", {}).get("trained_guidance", 1.0)
    table = Table(title="world-GenEval of the probe (world-exact detector, probe generator: "
                  "not official GenEval; no sampling-time guidance" + (
                      f", guidance {trained:g} trained in)" if trained != 1.0 else ")"))
    steps = scores["steps"]
    tasks = list(next(iter(steps.values()))["tasks"])
    for column in ("steps", "overall", *tasks):
        table.add_column(column)
    for k, value in steps.items():
        table.add_row(k, f"{value['overall']:.3f}", *(f"{value['tasks'][t]:.2f}" for t in tasks))
    console.print(table)


def generate(
    probe: Annotated[Path, typer.Option(
        "--probe", help="A probe folder (its latest checkpoint) or a checkpoint folder.",
        show_default=False)],
    prompt: Annotated[list[str], typer.Option(
        "--prompt", "-p", help="Prompt (repeatable).", show_default=False)],
    steps: Steps = "1,2,4",
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG grid to write.")] = Path(
        "probe-samples.png"),
    samples: Annotated[int, typer.Option("--samples", help="Seeds (rows) per prompt.")] = 2,
    guidance: Guidance = 1.0,
    view_size: Annotated[int, typer.Option("--view-size", help="Tile side in pixels.")] = 128,
    common: Common = None,
) -> None:
    """Sample a probe at several step counts into a PNG grid.

    One row per prompt and seed, one column per step count, the same noise across a row.
    """
    from emf_bench.errors import EmfBenchError

    counts = parse_steps(steps)
    from emf_bench.inputs import output_file

    output_file(out, "--out", (".png",))
    if not 1 <= samples <= 64:
        raise EmfBenchError(f"--samples must be 1 to 64, got {samples}")
    if view_size < 8:
        raise EmfBenchError(f"--view-size must be at least 8, got {view_size}")

    import numpy as np
    from PIL import Image

    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.storage import atomic_path
    from emf_bench.world.preview import caption_grid

    generator = ProbeGenerator(probe, device=common.device, cache=common.cache())
    rows = [(p, common.seed + i) for p in prompt for i in range(samples)]
    by_steps = {k: generator.generate([p for p, _ in rows], k, [s for _, s in rows], guidance)
                for k in counts}
    flat = [image for images in by_steps.values() for image in images]
    constant = sum(bool((image == image[:1, :1]).all()) for image in flat)
    if constant == len(flat):
        raise EmfBenchError(f"{generator.name} sampled only constant images (every pixel the "
                            f"same): its weights are degenerate; nothing written to {out}")
    tiles, captions = [], []
    for i, (text, _) in enumerate(rows):
        for k in counts:
            image = Image.fromarray(by_steps[k][i]).resize((view_size, view_size),
                                                           Image.NEAREST)
            tiles.append(np.asarray(image))
            captions.append(f"{k} step{'s' if k > 1 else ''}: {text}")
    grid = caption_grid(tiles, captions, columns=len(counts))
    with atomic_path(out) as tmp:
        grid.save(tmp, format="PNG")
    typer.echo(f"wrote {out} ({len(rows)} rows x {len(counts)} step counts; "
               f"{generator.name}, guidance {guidance:g})")
    if constant:
        typer.echo(f"note: {constant} of {len(flat)} images are constant (every pixel the "
                   f"same)", err=True)


def register(app: typer.Typer) -> None:
    app.command("train-probe")(world_options(common_options(*TRAINING)(train_probe)))
    app.command("generate")(common_options("device", "cache_dir", "offline", "seed")(generate))
