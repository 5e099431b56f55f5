"""`emf-bench eval`: GenEval and DPG-Bench at several step counts, for probes, image folders,
diffusers pipelines and any generator callable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emf_bench.cli.options import (
    Common,
    Overwrite,
    common_options,
    parse_steps,
    split_names,
    world_options,
)
from emf_bench.evaluation.benchmarks import BENCHMARKS, BackendOptions
from emf_bench.evaluation.geneval import GenEvalRules
from emf_bench.evaluation.runner import EvalSettings

MODEL_STEPS = (1, 2, 4)  # what a generator is evaluated at without --steps


def resolve_probe(spec: str, run_path: Path) -> Path:
    """`probe:NAME[/objective]` inside the run dir's probes, or a probe folder's path."""
    from emf_bench.errors import EmfBenchError

    if spec.startswith("probe:"):
        name = spec[len("probe:"):]
        encoder, _, objective = name.partition("/")
        folder = run_path / "probes" / encoder / (objective or "meanflow")
        if not folder.is_dir():
            raise EmfBenchError(f"no probe {name!r} in {run_path / 'probes'} (train it with "
                                f"emf-bench train-probe --encoder {encoder} --run-dir {run_path})")
        return folder
    path = Path(spec)
    if not path.exists():
        raise EmfBenchError(f"--model {spec}: not a probe (probe:NAME or a probe folder)")
    return path


def eval_command(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="A probe: probe:ENCODER\\[/OBJECTIVE] (in --run-dir) or a probe "
        "folder. Repeatable.", show_default=False)] = None,
    images: Annotated[list[str] | None, typer.Option(
        "--images", help="A folder of pre-generated images in the official layout (GenEval "
        "folders or DPG-Bench grids); {steps} in the path picks one folder per step count. "
        "Repeatable.", show_default=False)] = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", help="A diffusers pipeline (Hub id or folder; \\[diffusers] extra). "
        "Repeatable.", show_default=False)] = None,
    generator: Annotated[list[str] | None, typer.Option(
        "--generator", help="Any generator as a callable: module:function, file.py:function "
        "or a name in the emf_bench.generators entry points; called with (prompts, steps, "
        "seeds, guidance), returning one image per prompt. Repeatable.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name for a single --images, --pipeline or --generator model in results.",
        show_default=False)] = None,
    benchmark: Annotated[list[str], typer.Option(
        "--benchmark", "-b", help=f"{', '.join(BENCHMARKS)} (repeatable).")
    ] = ["world-geneval"],  # noqa: B006 - Typer needs a literal default
    steps: Annotated[str | None, typer.Option(
        "--steps", help="Sampling step counts, e.g. 1,2,4,16 \\[default: "
        f"{','.join(map(str, MODEL_STEPS))}; a folder without {{steps}}: its one set of "
        "images].", show_default=False)] = None,
    images_per_prompt: Annotated[int, typer.Option(
        "--images-per-prompt", help="GenEval images per prompt (DPG-Bench: always 4 tiles).")
    ] = EvalSettings.images_per_prompt,
    guidance: Annotated[float, typer.Option(
        "--guidance", help="Classifier-free guidance scale (1: none).")] = EvalSettings.guidance,
    geneval_metadata: Annotated[Path | None, typer.Option(
        "--geneval-metadata", help="GenEval's prompts/evaluation_metadata.jsonl.",
        show_default=False)] = None,
    dpg_prompts: Annotated[Path | None, typer.Option(
        "--dpg-prompts", help="DPG-Bench's prompts/ folder.", show_default=False)] = None,
    dpg_csv: Annotated[Path | None, typer.Option(
        "--dpg-csv", help="DPG-Bench's dpg_bench.csv.", show_default=False)] = None,
    geneval2_data: Annotated[Path | None, typer.Option(
        "--geneval2-data", help="GenEval 2's geneval2_data.jsonl.", show_default=False)] = None,
    official_compat: Annotated[bool, typer.Option(
        "--official-compat", help="DPG-Bench: reproduce the official script's first-row skip "
        "and last-tile category numbers; GenEval 2: the official answer-token rule.")] = False,
    detector: Annotated[str | None, typer.Option(
        "--detector", help="world-exact, mask2former-hf or mmdet (official) \\[default: "
        "world-exact on world suites, mask2former-hf on geneval].", show_default=False)] = None,
    detector_model: Annotated[str | None, typer.Option(
        "--detector-model", help="mask2former-hf model id or folder.", show_default=False)
    ] = None,
    color_model: Annotated[str, typer.Option(
        "--color-model", help="CLIP model for GenEval's colour classifier (non-world "
        "detectors).")] = BackendOptions.color_model,
    mmdet_config: Annotated[Path | None, typer.Option(
        "--mmdet-config", help="GenEval's mmdet config file.", show_default=False)] = None,
    mmdet_checkpoint: Annotated[Path | None, typer.Option(
        "--mmdet-checkpoint", help="GenEval's mmdet checkpoint.", show_default=False)] = None,
    vqa: Annotated[str | None, typer.Option(
        "--vqa", help="DPG-Bench: world-oracle, mplug (official; modelscope), vlm:<chat VLM "
        "id or folder> or hf:<model id or folder> (not official); GenEval 2: vlm:<chat VLM> "
        "\\[default: world-oracle on world-dpg, vlm:Qwen/Qwen3-VL-8B-Instruct on geneval2].",
        show_default=False)] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="GenEval score threshold.")
                         ] = GenEvalRules.threshold,
    counting_threshold: Annotated[float, typer.Option(
        "--counting-threshold", help="GenEval threshold on counting prompts.")
    ] = GenEvalRules.counting_threshold,
    max_objects: Annotated[int, typer.Option(
        "--max-objects", help="GenEval detections kept per class.")
    ] = GenEvalRules.max_objects,
    nms_threshold: Annotated[float, typer.Option(
        "--nms-threshold", help="Extra per-class NMS IoU (1.0: off, GenEval's setting).")
    ] = GenEvalRules.nms_threshold,
    position_threshold: Annotated[float, typer.Option(
        "--position-threshold", help="c in GenEval's relative-position rule.")
    ] = GenEvalRules.position_threshold,
    strict: Annotated[bool, typer.Option(
        "--strict/--no-strict", help="world-geneval: also report the strict extra score "
        "(extra objects fail).")] = True,
    save_images: Annotated[bool, typer.Option(
        "--save-images/--no-save-images", help="Keep generated images in the official layout."
        )] = True,
    pipeline_dtype: Annotated[str, typer.Option("--pipeline-dtype", help="Pipeline dtype.")
                              ] = "float16",
    pipeline_scheduler: Annotated[str | None, typer.Option(
        "--pipeline-scheduler", help="Another diffusers scheduler class for the pipeline, e.g. "
        "LCMScheduler (built from its scheduler config; recorded).", show_default=False)
    ] = None,
    pipeline_arg: Annotated[list[str] | None, typer.Option(
        "--pipeline-arg", help="KEY=VALUE passed to the pipeline's call, JSON values (e.g. "
        "timesteps=[999,759,499,259]). Repeatable; recorded.", show_default=False)] = None,
    pipeline_size: Annotated[int | None, typer.Option(
        "--pipeline-size", help="Pipeline image side \\[default: the pipeline's].",
        show_default=False)] = None,
    tags: Annotated[str | None, typer.Option(
        "--tags", help="Only these GenEval tasks, comma-separated (a partial run, labelled so).",
        show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="Only the first N prompts of each benchmark (a partial run, labelled "
        "so; kept apart from full runs).", show_default=False)] = None,
    overwrite: Overwrite = False,
    common: Common = None,
    world=None,
) -> None:
    """GenEval, DPG-Bench and GenEval 2 (or the world's suites) at 1/2/4/N steps.

    For probes, folders of pre-generated images, diffusers pipelines and generator callables.
    Results go to <run-dir>/evals/<model>/<benchmark>/steps-<k>/ and <run-dir>/evals/summary.*
    """
    from emf_bench.errors import EmfBenchError
    from emf_bench.evaluation.benchmarks import Sources, check_names

    specs = [("probe", m) for m in model or []] + [("folder", i) for i in images or []] + \
        [("pipeline", p) for p in pipeline or []] + [("callable", g) for g in generator or []]
    if not specs:
        raise EmfBenchError("name what to evaluate: --model probe:ENCODER, --images DIR, "
                            "--pipeline ID or --generator module:function")
    if name and len(specs) > 1:
        raise EmfBenchError("--name names a single model; give one --model/--images/"
                            "--pipeline/--generator")
    check_names(benchmark)
    counts = parse_steps(steps) if steps else None
    rules = GenEvalRules(threshold, counting_threshold, max_objects, nms_threshold,
                         position_threshold)

    from emf_bench import distributed
    from emf_bench.evaluation.runner import collect_summaries, summary_table

    settings = EvalSettings(images_per_prompt=images_per_prompt, seed=common.seed,
                            guidance=guidance, rules=rules, save_images=save_images)
    from emf_bench.evaluation.benchmarks import load_benchmark

    sources = Sources(geneval_metadata, dpg_prompts, dpg_csv, world.to_dict(), official_compat,
                      geneval2_data)
    from emf_bench.generators.diffusers import parse_call_args

    call_args = parse_call_args(pipeline_arg or [])
    # input files checked first, before a generator loads or a run directory is made
    suites = {b: load_benchmark(b, sources).select(split_names(tags) if tags else None, limit)
              for b in benchmark}
    for kind, spec in specs:
        if kind == "folder" and "{steps}" not in spec:
            from emf_bench.generators.folder import FolderGenerator

            FolderGenerator(spec)  # checks the folder
    distributed.init_from_env()
    run = common.run("eval")
    config = {"models": [f"{k}:{v}" for k, v in specs], "benchmarks": benchmark,
              "steps": list(counts) if counts else None, "settings": settings.to_dict(),
              "detector": detector, "vqa": vqa, "official_compat": official_compat,
              "tags": tags, "limit": limit, "world": world.to_dict()}
    options = BackendOptions(detector, detector_model, color_model, mmdet_config,
                             mmdet_checkpoint, vqa, strict, common.device)
    with run.invocation("eval", config, common.seed) as entry:
        results = []
        for kind, spec in specs:
            generator = make_generator(kind, spec, run.path, common, name, pipeline_dtype,
                                       pipeline_size, pipeline_scheduler, call_args)
            check_world(generator, world.to_dict())
            model_steps = counts or (
                (0,) if kind == "folder" and "{steps}" not in spec else MODEL_STEPS)
            if kind == "folder" and "{steps}" not in spec and len(model_steps) > 1:
                raise EmfBenchError(f"--images {spec} holds one set of images; put {{steps}} in "
                                    f"the path to give one folder per step count")
            for b in benchmark:
                results.append(evaluate_model(generator, suites[b], sources.world, run.path,
                                              settings, model_steps, overwrite, options))
        entry["results"] = [{k: s[k] for k in ("model", "benchmark", "steps", "overall")}
                            for r in results for s in r.values()]
        if distributed.is_main():
            table = summary_table(collect_summaries(run.path))
            write_table(table, run.path / "evals" / "summary")
    if distributed.is_main():
        print_results(results, run.path)


def make_generator(kind: str, spec: str, run_path: Path, common: Common, name,
                   dtype: str, size: int | None, scheduler: str | None = None,
                   call_args: dict | None = None):
    if kind == "probe":
        from emf_bench.generators.probe import ProbeGenerator

        return ProbeGenerator(resolve_probe(spec, run_path), device=common.device,
                              cache=common.cache(), precision=common.precision)
    if kind == "folder":
        from emf_bench.generators.folder import FolderGenerator

        return FolderGenerator(spec, name)
    if kind == "callable":
        from emf_bench.generators.callable import CallableGenerator

        return CallableGenerator(spec, name)
    from emf_bench.generators.diffusers import DiffusersGenerator

    return DiffusersGenerator(spec, device=common.device, dtype=dtype, size=size,
                              scheduler=scheduler, name=name, **(call_args or {}))


def check_world(generator, world: dict) -> None:
    """A probe is scored on the world it was trained on."""
    from emf_bench.errors import EmfBenchError

    trained = getattr(generator, "state", {}).get("world")
    if trained is not None and trained != world:
        raise EmfBenchError(f"{generator.name} was trained on another world than the one given "
                            f"(world options differ: "
                            f"{sorted(k for k in world if world[k] != trained.get(k))}); pass "
                            f"the probe's world options")


def evaluate_model(generator, bench, world: dict, run_path: Path, settings, steps,
                   overwrite: bool, options) -> dict:
    from emf_bench.evaluation.runner import StepSweep

    scorer = bench.make_scorer(options, world)
    return StepSweep(generator, bench, scorer, run_path, settings).run(steps, overwrite)


def write_table(table, stem: Path) -> None:
    from emf_bench.storage import atomic_path

    with atomic_path(stem.with_suffix(".parquet")) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)


def print_results(results: list[dict], run_path: Path) -> None:
    from rich.table import Table

    from emf_bench.cli.options import results_console
    from emf_bench.evaluation.benchmarks import benchmark_class
    from emf_bench.evaluation.runner import subset_label

    console = results_console()
    for by_steps in results:
        first = next(iter(by_steps.values()))
        scorer = first["scorer"]
        backend = (scorer.get("detector") or scorer.get("vqa"))["name"]
        label = "official backend" if scorer.get("official") else "NOT the official backend"
        part = f", {subset_label(first['subset'])}" if first.get("subset") else ""
        table = Table(title=f"{first['model']} on {first['benchmark']} ({backend}: {label}"
                            f"{part})")
        columns, rows = benchmark_class(first["benchmark"]).table(by_steps)
        for column in ["steps", *columns]:
            table.add_column(column)
        for k, row in zip(by_steps, rows, strict=True):
            table.add_row(str(k) if k else "given", *row)
        console.print(table)
        for k, s in by_steps.items():
            if s.get("errors"):
                console.print(f"note: {s['errors']} image(s) failed to load at steps {k}; "
                              f"they count as failures (see results.jsonl)", style="red")
            if s.get("skipped"):
                console.print(f"note: {len(s['skipped'])} prompt(s) not scored at steps {k} "
                              f"(official-compat: dangling dependency)")
    console.print(f"results: {run_path}/evals/<model>/<benchmark>/steps-<k>/ and "
                  f"{run_path}/evals/summary.parquet")


def register(app: typer.Typer) -> None:
    app.command("eval")(world_options(common_options(
        "device", "precision", "cache_dir", "offline", "run_dir", "seed")(eval_command)))
