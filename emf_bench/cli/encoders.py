"""`emf-bench encoders list | show | score`: registered encoders and their scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emf_bench.cli.options import (
    ENCODING,
    Common,
    EncodersDir,
    Overwrite,
    common_options,
    encoder_registry,
    results_console,
    split_names,
    world_options,
)

encoders_app = typer.Typer(
    help="Text encoders: list the registered ones, show a card, score discriminability and "
    "disentanglement (the EMF paper's protocols) plus labelled extras.",
    no_args_is_help=True,
)

def _availability(card) -> str:
    import importlib.util

    from emf_bench.text.base import is_local_path

    if card.backend in ("class-label", "bag-of-words", "constant"):
        return "built-in"
    package = card.options.get("package")
    if package and importlib.util.find_spec(package):
        return "installed"
    if card.backend == "open-clip" and not importlib.util.find_spec("open_clip"):
        return "needs [openclip]"
    if card.model and is_local_path(card.model):
        return "local" if Path(card.model).expanduser().exists() else "missing path"
    return "Hub download"


@encoders_app.command("list")
def list_encoders(encoders_dir: EncodersDir = None) -> None:
    """List registered encoders with their backend, model and where the weights come from."""
    from rich.table import Table

    registry = encoder_registry(encoders_dir)
    table = Table(title="registered encoders")
    for column in ("name", "backend", "model", "weights", "paper ref"):
        table.add_column(column)
    for name in registry.names():
        card = registry.card(name)
        table.add_row(name, card.backend, card.model or "-", _availability(card),
                      card.paper_reference or "")
    results_console().print(table)


@encoders_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Encoder name.")],
         encoders_dir: EncodersDir = None) -> None:
    """Show an encoder's card, where it came from and its feature fingerprint."""
    import yaml

    from emf_bench.resources import paper_reference
    from emf_bench.text.registry import weights_signature

    card = encoder_registry(encoders_dir).card(name)
    typer.echo(f"# {card.source or 'entry point'}")
    typer.echo(yaml.safe_dump(card.to_dict(), sort_keys=False).rstrip())
    signature = weights_signature(card)
    typer.echo(f"# weights: {signature or 'none (built-in)'}")
    typer.echo(f"# feature fingerprint: {card.fingerprint(signature)[:16]}")
    reference = paper_reference()["encoders"].get(card.paper_reference or "")
    if reference:
        typer.echo(f"# paper reference (COCO + DINOv3 / DPG-Bench): {reference}")


@encoders_app.command("score")
@world_options
@common_options(*ENCODING)
def score(
    encoder: Annotated[list[str] | None, typer.Option(
        "--encoder", "-e", help="Encoder to score (repeatable).", show_default=False)] = None,
    all_encoders: Annotated[bool, typer.Option("--all", help="Score every registered encoder."
                                               )] = False,
    dataset: Annotated[str, typer.Option(
        "--dataset", help="world (built in) or coco (needs --coco-captions, --coco-images, "
        "--image-features).")] = "world",
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Comma-separated: discriminability, disentanglement, recall, "
        "minimal-pairs \\[default: all that apply but recall, an extra that needs the [recall] "
        "package set].", show_default=False)] = None,
    k: Annotated[int, typer.Option("--k", help="Captions retrieved per query (paper: 2).")] = 2,
    queries: Annotated[int, typer.Option("--queries", help="Discriminability queries.")] = 1000,
    pool_size: Annotated[int | None, typer.Option(
        "--pool-size", help="Pool items \\[default: world 4000, coco all].",
        show_default=False)] = None,
    image_features: Annotated[str | None, typer.Option(
        "--image-features", help="world-scene, pixels, or hf:<model id or path> (DINO, CLIP "
        "vision) \\[default: world-scene on the world].", show_default=False)] = None,
    coco_captions: Annotated[Path | None, typer.Option(
        "--coco-captions", help="COCO captions_train2017.json.", show_default=False)] = None,
    coco_images: Annotated[Path | None, typer.Option(
        "--coco-images", help="COCO train2017 image folder.", show_default=False)] = None,
    prompts: Annotated[Path | None, typer.Option(
        "--prompts", help="Folder of DPG-Bench prompt files for disentanglement \\[default: the "
        "world's dense prompts].", show_default=False)] = None,
    layer: Annotated[str | None, typer.Option(
        "--layer", help="Override the cards' layer: last, mean-norm or an index.",
        show_default=False)] = None,
    pooling: Annotated[str | None, typer.Option(
        "--pooling", help="Override the cards' pooling: mean, first, last.",
        show_default=False)] = None,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", help="Override the cards' dtype: float32, float16, bfloat16.",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature "
                                           "cache.")] = False,
    overwrite: Overwrite = False,
    common: Common = None,
    world=None,
) -> None:
    """Score encoders for discriminability and disentanglement (EMF paper protocols) and
    labelled extras; results go to <run-dir>/encoders/<name>/."""
    from emf_bench.errors import EmfBenchError, in_range

    registry = common.registry()
    if all_encoders == bool(encoder):
        raise EmfBenchError("name encoders with --encoder NAME (repeatable) or pass --all")
    names = registry.names() if all_encoders else list(dict.fromkeys(encoder or []))
    cards = [_override(registry.card(n), layer, pooling, dtype).for_world(world.to_dict())
             for n in names]

    from emf_bench import distributed
    from emf_bench.analysis.scoring import ScoreConfig, score_encoders

    distributed.init_from_env()
    config = ScoreConfig(
        dataset=dataset, metrics=split_names(metrics) if metrics else None,
        pool_size=pool_size, n_queries=queries, k=k, seed=common.seed,
        image_features=image_features, coco_captions=coco_captions, coco_images=coco_images,
        prompts=prompts, world=world.to_dict())
    config.resolved_metrics()  # reject bad metric or dataset names before loading anything
    for option, value in (("--k", k), ("--queries", queries), ("--batch-size", batch_size),
                          ("--pool-size", 1 if pool_size is None else pool_size)):
        in_range(option, value, 1)
    from emf_bench.inputs import existing_dir, existing_file

    for folder, what in ((prompts, "prompt folder"), (coco_images, "COCO image folder")):
        if folder is not None:
            existing_dir(folder, what)
    if coco_captions is not None:
        existing_file(coco_captions, "COCO captions file")
    run = common.run("encoder-scores")
    cache = None if no_cache else common.cache()
    failures: list[tuple[str, str]] = []
    results = []
    settings = {**config.to_dict(), "encoders": names, "device": common.device,
                "batch_size": batch_size, "cache": None if cache is None else str(cache.root)}
    with run.invocation("encoders score", settings, common.seed) as entry:
        results = score_encoders(
            cards, config, run.path, cache, device=common.device, batch_size=batch_size,
            overwrite=overwrite, on_error=None if len(cards) == 1 else (
                lambda card, err: failures.append((card.name, str(err).splitlines()[0]))))
        entry["failures"] = [{"encoder": n, "error": e} for n, e in failures]
    if distributed.is_main():
        _print_table(results, failures, run.path)
    if failures:
        raise EmfBenchError(f"{len(failures)} of {len(cards)} encoders failed (see above); "
                            f"the others are saved in {run.path}")


def _override(card, layer, pooling, dtype):
    """A card with command-line overrides, renamed so its results do not replace the card's."""
    suffix = []
    if layer is not None:
        layer = int(layer) if layer.lstrip("-").isdigit() else layer
        suffix.append(f"layer{layer}")
    if pooling is not None:
        suffix.append(f"pool-{pooling}")
    if dtype is not None:
        suffix.append(dtype)
    if not suffix:
        return card
    renamed = card.with_overrides(layer=layer, pooling=pooling, dtype=dtype)
    if layer is not None:  # before any work: a backend without layers would fail at loading
        from emf_bench.text.registry import backend_class

        backend_class(card.backend).check_card(renamed)
    return renamed.with_overrides(name=f"{card.name}.{'.'.join(suffix)}")


def _fmt(metric: dict | None, key: str = "score", with_error: bool = False) -> str:
    if not metric:
        return "-"
    if metric.get("not_applicable"):
        return "n/a"
    value = metric.get(key)
    if value is None:
        return "-"
    se = metric.get("std_error") if with_error else None
    return f"{value:.3f}" + (f"±{se:.3f}" if se else "")


def _print_table(results: list[dict], failures: list[tuple[str, str]], run_path: Path) -> None:
    from rich.table import Table

    console = results_console()
    table = Table(title="encoder scores (measured)", caption="* extra, not the paper's metric. "
                  "paper: published values on COCO + DINOv3 / DPG-Bench (reference only)")
    for column in ("encoder", "disc.", "chance", "disent.", "centred*", "pairs*", "R@1*",
                   "paper", "texts"):
        table.add_column(column, no_wrap=column in ("encoder", "disc."))
    for r in results:
        m = r["metrics"]
        paper = r.get("paper_reference")
        recall = (m.get("recall") or {}).get("text_to_image")
        enc = r["encoding"]
        table.add_row(
            r["encoder"], _fmt(m.get("discriminability"), with_error=True),
            _fmt(m.get("discriminability"), "random_baseline"), _fmt(m.get("disentanglement")),
            _fmt((m.get("disentanglement") or {}).get("centred")), _fmt(m.get("minimal_pairs")),
            f"{recall['R@1']:.3f}" if recall else _fmt(m.get("recall")),
            f"{paper['discriminability']:.3f}/{paper['disentanglement']:.3f}" if paper else "",
            "reused" if r.get("reused") else
            ("cached" if enc["computed"] == 0 else f"{enc['computed']} new"))
    console.print(table)
    for r in results:
        truncated = sum(t["truncated"] for t in r["truncation"].values())
        if truncated:
            texts = sum(t["texts"] for t in r["truncation"].values())
            console.print(f"note: {r['encoder']} truncated {truncated} of {texts} texts at its "
                          f"maximum length")
        for metric, value in r["metrics"].items():
            if value.get("not_applicable"):
                console.print(f"note: {r['encoder']} {metric}: n/a, "
                              f"{value['not_applicable'].split(' (')[0]}")
    for label in sorted({label for r in results for label in r.get("labels", [])}):
        console.print(f"note: {label}")
    for name, error in failures:
        console.print(f"failed {name}: {error}", style="red")
    console.print(f"results: {run_path}/encoders/<name>/scores.json and per-item .parquet")
