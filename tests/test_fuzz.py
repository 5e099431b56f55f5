"""Seeded random corruptions of every file the tool reads, from users or from its own runs:
truncation, byte flips, inserted bytes, wrong types, missing and extra fields, odd image modes
and sizes. Every case ends in success or in an EmfBenchError (one line; the CLI's exit code 2),
never in another exception (a traceback, exit 1). A few cases a loader in the default run;
the `deep` variants (slow: CI runs them) try ten times as many."""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from emf_bench.errors import EmfBenchError


@pytest.fixture(params=[4, pytest.param(40, marks=pytest.mark.slow)], ids=["quick", "deep"])
def cases(request) -> int:
    return request.param


# -- corruptions ----------------------------------------------------------------------------

ODD_VALUES = [None, "", "x", "yes please", -1, 0, 10**12, 1.5, float("nan"), True, [], [1, "a"],
              {}, {"k": "v"}]


def corrupt_bytes(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["truncate", "flip", "insert", "empty", "garbage", "zero-run"])
    if kind == "truncate" and data:
        return data[: rng.randrange(len(data))]
    if kind == "flip" and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "insert":
        i = rng.randrange(len(data) + 1)
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[i:]
    if kind == "zero-run" and data:
        i = rng.randrange(len(data))
        return data[:i] + b"\0" * min(64, len(data) - i) + data[i + 64:]
    if kind == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return b""


def mutate_structure(obj, rng: random.Random):
    """A parsed JSON/YAML document with one field dropped, added or given an odd value, or the
    whole document replaced by a value of another type."""
    if not isinstance(obj, dict) or not obj or rng.random() < 0.1:
        return rng.choice(ODD_VALUES)
    obj = json.loads(json.dumps(obj, default=str))
    key = rng.choice(sorted(obj))
    kind = rng.choice(["drop", "odd", "odd", "extra", "nested"])
    if kind == "drop":
        del obj[key]
    elif kind == "extra":
        obj[f"unexpected_{rng.randrange(100)}"] = rng.choice(ODD_VALUES)
    elif kind == "nested" and isinstance(obj[key], dict):
        obj[key] = mutate_structure(obj[key], rng)
    elif kind == "nested" and isinstance(obj[key], list) and obj[key]:
        obj[key][rng.randrange(len(obj[key]))] = rng.choice(ODD_VALUES)
    else:
        obj[key] = rng.choice(ODD_VALUES)
    return obj


def corrupt_text_file(path: Path, rng: random.Random, fmt: str) -> None:
    data = path.read_bytes()
    if rng.random() < 0.5:
        path.write_bytes(corrupt_bytes(data, rng))
        return
    if fmt == "jsonl":
        lines = data.decode().splitlines()
        i = rng.randrange(len(lines))
        lines[i] = json.dumps(mutate_structure(json.loads(lines[i]), rng), default=str)
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "json":
        path.write_text(json.dumps(mutate_structure(json.loads(data), rng), default=str))
    elif fmt == "yaml":
        path.write_text(yaml.safe_dump(mutate_structure(yaml.safe_load(data), rng)))
    else:  # csv and plain text: drop, duplicate or scramble a line
        lines = data.decode().splitlines()
        i = rng.randrange(len(lines))
        choice = rng.choice(["drop", "dup", "cells"])
        if choice == "drop":
            del lines[i]
        elif choice == "dup":
            lines.insert(i, lines[i])
        else:
            cells = lines[i].split(",")
            cells[rng.randrange(len(cells))] = str(rng.choice(ODD_VALUES))
            lines[i] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")


def odd_image(rng: random.Random) -> bytes:
    """An image of an unusual mode, size or format (or broken bytes of one)."""
    h, w = rng.choice([(1, 1), (3, 7), (64, 48), (65, 65), (128, 128), (2, 300)])
    mode = rng.choice(["RGB", "L", "LA", "RGBA", "P", "I;16", "I", "F", "1", "CMYK"])
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 255, (h, w, 3), np.uint8)
    image = Image.fromarray(pixels)
    if mode == "I;16":
        image = Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257)
    elif mode != "RGB":
        image = image.convert(mode)
    plain = rng.choice(["PNG", "PNG", "BMP"]) if mode in ("RGB", "L", "P", "1") else "PNG"
    fmt = {"CMYK": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, plain)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    data = buffer.getvalue()
    return corrupt_bytes(data, rng) if rng.random() < 0.3 else data


def survives(load: Callable[[], object]) -> None:
    """`load` succeeds or raises EmfBenchError with a single line; anything else fails."""
    try:
        load()
    except EmfBenchError as err:
        assert "\n" not in str(err), str(err)


def fuzz(tmp_path: Path, source: Path, n: int, seed: int, corrupt: Callable, load: Callable):
    """Corrupt a fresh copy of `source` n times (seeded) and load it each time."""
    for case in range(n):
        rng = random.Random(f"{seed}:{case}")
        target = tmp_path / f"case-{case}" / source.name
        target.parent.mkdir(parents=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
        corrupt(target, rng)
        survives(lambda target=target: load(target))


# -- user inputs ----------------------------------------------------------------------------

def test_geneval_metadata(tmp_path, cases, geneval_metadata_file):
    from emf_bench.evaluation.benchmarks.geneval import load_geneval_metadata

    fuzz(tmp_path, geneval_metadata_file, cases, 1,
         lambda p, rng: corrupt_text_file(p, rng, "jsonl"), load_geneval_metadata)


def _sweep(root: Path, benchmark: str):
    from emf_bench.evaluation.benchmarks import Scorer, load_benchmark
    from emf_bench.evaluation.detectors import load_detector
    from emf_bench.evaluation.runner import EvalSettings, StepSweep
    from emf_bench.evaluation.vqa import load_vqa
    from emf_bench.generators.folder import FolderGenerator

    scorer = Scorer(detector=load_detector("world-exact")) if benchmark == "world-geneval" \
        else Scorer(vqa=load_vqa("world-oracle"))
    return StepSweep(FolderGenerator(root / "images", "fuzz"), load_benchmark(benchmark),
                     scorer, root / "run", EvalSettings(images_per_prompt=1, chunk_prompts=64))


def test_image_folders_of_odd_images(tmp_path, cases, exported):
    """Odd images in place of some of a GenEval folder's and a DPG folder's: scored, or
    counted as failures, never a crash (the sweep's own rows and summary included)."""
    for benchmark, sub, pattern in (("world-geneval", "geneval", "*/samples/*.png"),
                                    ("world-dpg", "dpg", "*.png")):
        for case in range(max(1, cases // 2)):
            rng = random.Random(f"{benchmark}:{case}")
            root = tmp_path / f"{sub}-{case}"
            shutil.copytree(exported / sub / "images", root / "images")
            files = sorted((root / "images").glob(pattern))
            for file in rng.sample(files, k=min(len(files), 6)):
                file.write_bytes(odd_image(rng))
            survives(lambda root=root, benchmark=benchmark: _sweep(root, benchmark).run([0]))


def test_decoding_odd_images(cases):
    from emf_bench.images import decode_image

    for case in range(cases * 5):
        rng = random.Random(f"image:{case}")
        survives(lambda rng=rng: decode_image(odd_image(rng), "fuzz.png"))


def test_dpg_csv_and_prompt_folders(tmp_path, cases, exported):
    from emf_bench.evaluation.benchmarks import Sources, load_benchmark

    def load(root: Path):
        return load_benchmark("dpg", Sources(dpg_prompts=root / "prompts",
                                             dpg_csv=root / "dpg_bench.csv"))

    def corrupt(root: Path, rng: random.Random):
        if rng.random() < 0.5:
            corrupt_text_file(root / "dpg_bench.csv", rng, "csv")
        else:
            prompt = rng.choice(sorted((root / "prompts").glob("*.txt")))
            prompt.write_bytes(corrupt_bytes(prompt.read_bytes(), rng))

    fuzz(tmp_path, exported / "dpg", cases, 2, corrupt, load)


def test_encoder_cards(tmp_path, cases):
    from emf_bench.resources import cards_dir
    from emf_bench.text.registry import EncoderRegistry, backend_class

    def load(card: Path):
        registry = EncoderRegistry.load([card.parent])
        for name in registry.names():
            c = registry.card(name)
            backend_class(c.backend).check_card(c)

    for name in ("bag-of-words", "blip3o-next", "minilm"):
        fuzz(tmp_path / name, cards_dir("encoders") / f"{name}.yaml", cases, 3,
             lambda p, rng: corrupt_text_file(p, rng, "yaml"), load)


def test_world_configs(tmp_path, cases):
    from emf_bench.cli.options import world_config
    from emf_bench.world import World, WorldConfig

    source = tmp_path / "world.yaml"
    source.write_text(yaml.safe_dump(WorldConfig(canvas=48).to_dict()))

    def load(path: Path):
        World(world_config(config_file=path)).geneval_suite()

    fuzz(tmp_path, source, cases, 4, lambda p, rng: corrupt_text_file(p, rng, "yaml"), load)


# -- the tool's own state files -------------------------------------------------------------

def test_checkpoints(tmp_path, cases, study_run):
    from emf_bench.generators.probe import ProbeGenerator

    run, _ = study_run
    source = run / "probes/class-label/meanflow"

    def corrupt(probe: Path, rng: random.Random):
        files = sorted(f for f in probe.rglob("*") if f.is_file() and f.suffix in
                       (".json", ".safetensors"))
        file = rng.choice(files)
        if file.suffix == ".json" and rng.random() < 0.5:
            corrupt_text_file(file, rng, "json")
        else:
            file.write_bytes(corrupt_bytes(file.read_bytes(), rng))

    def load(probe: Path):
        ProbeGenerator(probe).generate(["a photo of a red circle"], 1, [0])

    fuzz(tmp_path, source, cases, 5, corrupt, load)


def test_run_directory_state_files(tmp_path, cases, study_run):
    """The report over a study whose files were damaged: built, or one line."""
    from emf_bench.reporting.report import build_report

    run, _ = study_run
    files = sorted(f.relative_to(run) for f in run.rglob("*") if f.is_file() and f.suffix in
                   (".json", ".jsonl", ".csv") and "report" not in f.parts)

    def corrupt(copy: Path, rng: random.Random):
        file = copy / rng.choice(files)
        fmt = file.suffix.lstrip(".")
        corrupt_text_file(file, rng, fmt if fmt in ("json", "jsonl") else "csv")

    fuzz(tmp_path, run, cases, 6, corrupt, build_report)
