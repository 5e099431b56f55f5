"""Finished rows are reused only when everything they were computed from is the same by
content: a replaced image or grid is scored again, a moved run directory resumes, a torn chunk
file or an unreadable settings file costs only its own rows."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from emf_bench.evaluation.benchmarks import Scorer, load_benchmark
from emf_bench.evaluation.detectors import load_detector
from emf_bench.evaluation.runner import EvalSettings, StepSweep
from emf_bench.evaluation.vqa import load_vqa
from emf_bench.generators.folder import FolderGenerator


@pytest.fixture
def images(exported, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(exported, root)
    return root


def geneval(root, run):
    return StepSweep(FolderGenerator(root / "geneval/images", "truth"),
                     load_benchmark("world-geneval"),
                     Scorer(detector=load_detector("world-exact")), run,
                     EvalSettings(chunk_prompts=32))


def dpg(root, run):
    return StepSweep(FolderGenerator(root / "dpg/images", "truth"), load_benchmark("world-dpg"),
                     Scorer(vqa=load_vqa("world-oracle")), run, EvalSettings(chunk_prompts=16))


def results(run, benchmark="world-geneval"):
    return (run / f"evals/truth/{benchmark}/steps-0/results.jsonl").read_text()


def test_an_image_replaced_after_failing_is_scored_again(images, tmp_path, capsys):
    sample = images / "geneval/images/00003/samples/00001.png"
    good = sample.read_bytes()
    sample.write_bytes(b"")
    summary = geneval(images, tmp_path / "run").run([0])[0]
    assert summary["errors"] == 1
    err = capsys.readouterr().err
    assert "1 image(s) could not be scored" in err and "00001.png is empty" in err
    sample.write_bytes(good)
    summary = geneval(images, tmp_path / "run").run([0])[0]
    assert summary["errors"] == 0 and summary["overall"] == 1.0
    rows = len(results(tmp_path / "run").splitlines())
    assert f"{rows - 1} row(s) reused (same content), 1 computed" in capsys.readouterr().err


def test_a_bad_dpg_grid_replaced_by_a_good_one_is_scored_again(images, tmp_path, capsys):
    grid = images / "dpg/images" / f"{load_benchmark('world-dpg').items[2].item_id}.png"
    good = grid.read_bytes()
    for bad in (Image.new("RGB", (64, 48)), Image.new("RGB", (65, 65)), Image.new("RGB", (1, 1))):
        bad.save(grid)
        summary = dpg(images, tmp_path / "run").run([0])[0]
        assert summary["errors"] == 4 and summary["overall"] < 100.0  # four tiles failed
        assert "could not be scored" in capsys.readouterr().err
    grid.write_bytes(good)
    assert dpg(images, tmp_path / "run").run([0])[0]["overall"] == 100.0


def test_a_run_directory_moved_with_its_images_resumes_without_recomputing(images, tmp_path,
                                                                            capsys):
    geneval(images, tmp_path / "run").run([0])
    before = results(tmp_path / "run")
    shutil.move(tmp_path / "run", tmp_path / "moved")
    shutil.move(images, tmp_path / "elsewhere")
    capsys.readouterr()
    geneval(tmp_path / "elsewhere", tmp_path / "moved").run([0])
    assert results(tmp_path / "moved") == before
    assert ", 0 computed" in capsys.readouterr().err


def test_a_torn_chunk_file_and_an_unreadable_settings_file_cost_only_their_rows(images,
                                                                                tmp_path,
                                                                                capsys):
    run = tmp_path / "run"
    geneval(images, run).run([0])
    before = results(run)
    chunk = run / "evals/truth/world-geneval/steps-0/chunks/chunk-00001.jsonl"
    text = chunk.read_text()
    chunk.write_text(text[: len(text) - 40])  # a crash mid-line
    (run / "evals/truth/world-geneval/settings.json").write_text('{"version": 2, "sett')
    capsys.readouterr()
    geneval(images, run).run([0])
    err = capsys.readouterr().err
    assert "settings.json is unreadable" in err and "1 unreadable line(s) skipped" in err
    assert results(run) == before


def test_edited_metadata_or_pixels_change_the_rows_key(images, tmp_path):
    run = tmp_path / "run"
    geneval(images, run).run([0])
    keys = {json.loads(r)["key"] for r in results(run).splitlines()}
    assert len(keys) == len(results(run).splitlines())  # one key a row (GenEval: an image)
    sample = images / "geneval/images/00000/samples/00000.png"
    pixels = np.asarray(Image.open(sample).convert("RGB")).copy()
    pixels[0, 0] = (pixels[0, 0] + 1) % 255
    Image.fromarray(pixels).save(sample)
    geneval(images, run).run([0])
    after = {json.loads(r)["key"] for r in results(run).splitlines()}
    assert len(keys - after) == 1


def test_a_folder_with_fewer_images_than_asked_says_so(images, tmp_path, capsys):
    sweep = geneval(images, tmp_path / "run")  # the export has 2 a prompt, 4 are asked for
    sweep.run([0])
    assert f"{len(sweep.benchmark)} prompt(s) have fewer images than the 4 asked for" in \
        capsys.readouterr().err
