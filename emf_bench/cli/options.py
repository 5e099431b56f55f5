"""Option aliases shared by every command, defined once (`Annotated`, as lighteval does)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

Seed = Annotated[int, typer.Option("--seed", help="Random seed; fixes every sampled scene.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs instead of refusing or skipping them.")]
RunDirOption = Annotated[Path | None, typer.Option(
    "--run-dir", help="Run directory for outputs and manifest.json \\[default: reports/<name>/].",
    show_default=False)]

# Encoders and their features: every command that encodes text takes these.
EncodersDir = Annotated[list[Path] | None, typer.Option(
    "--encoders-dir", help="Folder of extra encoder cards (repeatable; also "
    "EMF_BENCH_ENCODERS).", show_default=False)]


def _check_device(value: str) -> str:
    """Refuse a device this machine lacks before any work starts (the value is kept as given:
    "auto" and "cuda" are resolved per process, under torchrun per rank)."""
    if value not in ("auto", "cpu"):
        from emf_bench.text.base import resolve_device

        resolve_device(value)
    return value


Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, auto.",
                                     callback=_check_device)]
Precision = Annotated[str, typer.Option(
    "--precision", help="Arithmetic of probe training and sampling: auto (bf16 autocast where "
    "the device does bf16 natively: CPUs with AVX512-BF16 or AMX, recent GPUs; else float32), "
    "float32, bfloat16.")]
Threads = Annotated[int | None, typer.Option(
    "--threads", help="Intra-op CPU threads of a probe's training \\[default: the physical "
    "cores; in a study on a CPU, one per probe, the probes side by side].",
    show_default=False)]


def check_hardware(device: str, precision: str, threads: int | None) -> None:
    """Refuse a precision the device cannot do and more threads than cores, before any work."""
    from emf_bench.probe.precision import check_threads, resolve_precision
    from emf_bench.text.base import resolve_device

    resolve_precision(precision, resolve_device(device))
    check_threads(threads)


CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Feature cache \\[default: $EMF_BENCH_CACHE or "
    "~/.cache/emf-bench/features].", show_default=False)]
Offline = Annotated[bool, typer.Option(
    "--offline", help="Never contact the Hugging Face Hub (HF_HUB_OFFLINE=1).")]


FirstTasks = Annotated[str | None, typer.Option(
    "--first-tasks", help="Curriculum: world tasks (comma-separated, e.g. position) a probe "
    "trains on alone for the first --first-share of its budget, before the whole mix "
    "\\[default: run: the profile's; train-probe: none].",
    show_default=False)]
FirstShare = Annotated[float | None, typer.Option(
    "--first-share", help="Budget share of the curriculum's first part; 0 alone: no "
    "curriculum \\[default: run: the profile's; train-probe: 0].",
    show_default=False)]


def split_names(value: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c")."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def results_console():
    """A rich console for results: logs and pipes get 140 columns, not a pretend 80. Markup is
    off: encoder names, prompts, paths and notes ("the [minilm] extra") print as they are;
    colour goes through `style=`."""
    from rich.console import Console

    out = Console(markup=False)
    return out if out.is_terminal else Console(width=140, markup=False)


def parse_steps(value: str) -> tuple[int, ...]:
    """Sampling step counts from "1,2,4,16" (sorted, distinct, each at least 1)."""
    from emf_bench.errors import EmfBenchError

    try:
        counts = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise EmfBenchError(f"--steps {value!r} must be comma-separated integers, e.g. "
                            f"1,2,4,16") from None
    if not counts or counts[0] < 1 or counts[-1] > 1000:
        raise EmfBenchError(f"--steps {value!r}: give step counts from 1 to 1000")
    return tuple(counts)


def go_offline(offline: bool) -> None:
    if offline:
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"


def encoder_registry(dirs: list[Path] | None):
    from emf_bench.text.registry import EncoderRegistry

    registry = EncoderRegistry.load(dirs or [])
    for line in registry.shadowed:
        typer.echo(f"note: {line}", err=True)
    return registry


# The world: every command that builds one takes the same options.
# World options default to None, "not given", so a --world-config file's values stand unless
# the user overrides them; the help shows WorldConfig's defaults.
Canvas = Annotated[int | None, typer.Option(
    "--canvas", help="Training canvas side in pixels \\[default: 32].", show_default=False)]
Shapes = Annotated[str | None, typer.Option(
    "--shapes", help="Comma-separated shapes \\[default: circle,square,triangle; also diamond, "
    "cross, ring].", show_default=False)]
Colors = Annotated[str | None, typer.Option(
    "--colors", help="Comma-separated GenEval colours \\[default: red,green,blue,yellow; up to all "
    "ten].", show_default=False)]
WorldSplit = Annotated[str | None, typer.Option(
    "--world-split", help="phrasing: evaluation uses held-out wordings; compositional: also "
    "held-out combinations \\[default: phrasing].", show_default=False)]
WorldSeed = Annotated[int | None, typer.Option(
    "--world-seed", help="Seed of the world's catalogue (dense prompts, held-out meanings) "
    "\\[default: 0].", show_default=False)]
WorldConfigFile = Annotated[Path | None, typer.Option(
    "--world-config", help="YAML or JSON file of WorldConfig fields; command-line options "
    "override it.", show_default=False)]


# Parameter name -> (annotation, WorldConfig field or None for the config file).
_WORLD_OPTIONS: dict[str, tuple[Any, str | None]] = {
    "canvas": (Canvas, "canvas"), "shapes": (Shapes, "shapes"), "colors": (Colors, "colors"),
    "world_split": (WorldSplit, "split"), "world_seed": (WorldSeed, "seed"),
    "world_file": (WorldConfigFile, None),
}


def _with_block(command: Callable[..., Any], block: dict[str, tuple[Any, Any]], target: str,
                build: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """`command` with the options of `block` (parameter name -> (annotation, default)) in its
    signature, called with `target=build(their values)` instead of them."""
    # eval_str: the command's module uses `from __future__ import annotations`, and Typer takes
    # a preset __signature__ as it is, so its annotations must already be real objects.
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != target]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=annotation)
             for name, (annotation, default) in block.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, default) for name, (_, default) in block.items()}
        kwargs[target] = build(values)
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    return wrapper


def world_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a Typer command the world options and call it with `world=` a WorldConfig.

    The options are declared once here; the command declares a `world` parameter instead.
    """
    def build(values: dict[str, Any]):
        return world_config(values["canvas"], values["shapes"], values["colors"],
                            values["world_split"], values["world_seed"], values["world_file"])

    block = {name: (annotation, None) for name, (annotation, _) in _WORLD_OPTIONS.items()}
    return _with_block(command, block, "world", build)


@dataclass(frozen=True)
class Common:
    """The options that commands which encode, train or evaluate share, checked on creation:
    the Hub switched off for --offline, the precision and threads checked where a command
    trains (`threads` None: the physical cores, or a study's share of them)."""

    device: str = "auto"
    seed: int = 0
    run_dir: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    encoders_dir: tuple[Path, ...] = ()
    precision: str = "auto"
    threads: int | None = None

    def run(self, default_name: str):
        """The run directory: --run-dir, or reports/<default_name>/."""
        from emf_bench.rundir import RunDir, default_run_dir

        return RunDir.open(self.run_dir or default_run_dir(default_name))

    def registry(self):
        return encoder_registry(list(self.encoders_dir))

    def cache(self):
        from emf_bench.text.cache import FeatureCache

        return FeatureCache(self.cache_dir)


_COMMON: dict[str, tuple[Any, Any]] = {
    "device": (Device, "auto"), "precision": (Precision, "auto"), "threads": (Threads, None),
    "cache_dir": (CacheDir, None), "offline": (Offline, False), "run_dir": (RunDirOption, None),
    "seed": (Seed, 0), "encoders_dir": (EncodersDir, None),
}


# The blocks commands take: what encodes text, and what also trains.
ENCODING = ("device", "cache_dir", "offline", "run_dir", "seed", "encoders_dir")
TRAINING = ("device", "precision", "threads", "cache_dir", "offline", "run_dir", "seed",
            "encoders_dir")


def common_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a Typer command the shared options `names` (declared once, in `_COMMON`) and call
    it with `common=` a Common."""
    block = {name: _COMMON[name] for name in names}

    def build(values: dict[str, Any]) -> Common:
        go_offline(values.get("offline", False))
        values["encoders_dir"] = tuple(values.get("encoders_dir") or ())
        if "precision" in values:
            check_hardware(values["device"], values["precision"], values.get("threads"))
        return Common(**values)

    return lambda command: _with_block(command, block, "common", build)


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return split_names(value) or None


def world_config(canvas: int | None = None, shapes: str | None = None, colors: str | None = None,
                 split: str | None = None, seed: int | None = None,
                 config_file: Path | None = None, **extra):
    """A WorldConfig from a config file (optional) overridden by the given options."""
    from emf_bench.world import WorldConfig

    values: dict = {}
    if config_file is not None:
        values.update(_read_world_config(config_file))
    overrides = {"canvas": canvas, "shapes": _names(shapes), "colors": _names(colors),
                 "split": split, "seed": seed, **extra}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return WorldConfig.from_dict(values, where=str(config_file or "world options"))


def _read_world_config(path: Path) -> dict:
    from emf_bench.errors import EmfBenchError
    from emf_bench.resources import read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise EmfBenchError(f"world config {path} must be a mapping of WorldConfig fields")
    return data
