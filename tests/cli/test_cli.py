import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emf_bench.cli import main
from emf_bench.evaluation import world_export

HEAVY = ("torch", "numpy", "scipy", "PIL", "transformers", "pandas", "matplotlib", "sklearn")


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_imports_no_heavy_library():
    probe = ("import sys; from emf_bench.cli import main; "
             "codes = [main(a) for a in (['--help'], ['world', '--help'], "
             "['world', 'preview', '--help'], ['world', 'export', '--help'])]; "
             f"print(codes, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0] []"


def _command_paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_help_renders_with_its_brackets(capsys, monkeypatch):
    """Rich reads "[...]" in help text as markup: an unescaped "[/OBJECTIVE]" crashed
    `eval --help`, and "[diffusers]" vanished from it."""
    import typer

    from emf_bench.cli.app import app

    monkeypatch.setenv("COLUMNS", "200")  # no "probe:ENCODER[/OBJ…" cut at 80 columns
    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("eval",) in paths and ("encoders", "score") in paths
    for path in paths:
        code, out, err = run(capsys, *path, "--help")
        assert code == 0 and "Traceback" not in err, (path, err)
        if path == ("eval",):
            flat = " ".join(out.replace("│", " ").split())
            assert "probe:ENCODER[/OBJECTIVE]" in flat and "[diffusers] extra" in flat


def test_results_console_prints_brackets_as_text(capsys):
    from emf_bench.cli.options import results_console

    results_console().print("note: install the [minilm] extra; model probe:a[/b]")
    assert "install the [minilm] extra; model probe:a[/b]" in capsys.readouterr().out


def test_module_entry_point_and_version():
    result = subprocess.run([sys.executable, "-m", "emf_bench", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("emf-bench ")


def test_no_arguments_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "world" in out


@pytest.mark.parametrize("args, message", [
    (["world", "preview", "--nope"], "No such option: --nope"),
    (["world", "preview", "--count", "x"], "Invalid value for '--count'"),
    (["bogus"], "No such command 'bogus'"),
    (["world", "export"], "Missing option '--out'"),
    (["world", "preview", "--canvas", "16"], "canvas 16x16 is too small"),
    (["world", "preview", "--shapes", "circle,sqare"], "did you mean 'square'"),
    (["world", "preview", "--split", "test"], "unknown preview split 'test'"),
    (["world", "preview", "--out", "x.jpg"], "--out must be a .png file"),
    (["world", "preview", "--count", "0"], "--count must be 1 to 1024"),
])
def test_user_mistakes_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("args", [
    ["run"], ["train-probe", "--encoder", "class-label"], ["eval", "--model", "probe:class-label"],
    ["encoders", "score", "--encoder", "class-label"],
    ["generate", "--probe", "p", "--prompt", "a circle"]])
def test_a_missing_gpu_is_refused_before_any_work(capsys, tmp_path, monkeypatch, args):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, *args, "--device", "cuda")
    assert code == 2 and err.count("\n") == 1 and "sees no CUDA GPU" in err
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback_from_any_position(capsys):
    code, _, err = run(capsys, "world", "preview", "--canvas", "16", "--debug")
    assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error:")


def test_preview_writes_a_grid_with_one_tile_per_scene(capsys, tmp_path):
    out = tmp_path / "deep" / "grid.png"
    args = ("world", "preview", "--out", str(out), "--count", "6", "--columns", "3",
            "--view-size", "64", "--split", "eval")
    code, _, err = run(capsys, *args)  # only a run directory is made with its parents
    assert code == 2 and "deep does not exist (create it first)" in err
    out.parent.mkdir()
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and str(out) in stdout
    image = Image.open(out)
    assert image.width == 3 * (64 + 6) + 6  # three tiles and their padding per row


def test_preview_refuses_an_unwritable_destination(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "world", "preview", "--out", str(tmp_path / "file" / "g.png"))
    assert code == 2 and "file is a file, not a folder" in err


def test_world_config_file_with_unknown_key_is_named(capsys, tmp_path):
    config = tmp_path / "world.yaml"
    config.write_text("canvas: 48\nshapez: [circle]\n")
    code, _, err = run(capsys, "world", "preview", "--world-config", str(config),
                       "--out", str(tmp_path / "g.png"))
    assert code == 2 and "unknown key in" in err and "'shapez'" in err and "world.yaml" in err
    config.write_text("canvas: 48\nshapes: [circle, diamond]\n")
    code, _, _ = run(capsys, "world", "preview", "--world-config", str(config),
                     "--out", str(tmp_path / "g.png"), "--count", "2")
    assert code == 0


def test_export_writes_official_layouts_and_a_manifest(capsys, tmp_path):
    out = tmp_path / "export"
    code, _, _ = run(capsys, "world", "export", "--out", str(out), "--images-per-prompt", "2",
                     "--size", "48")
    assert code == 0
    metadata = [json.loads(x) for x in
                (out / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()]
    folders = sorted((out / "geneval" / "images").iterdir())
    assert [f.name for f in folders] == [f"{i:05d}" for i in range(len(metadata))]
    assert json.loads((folders[3] / "metadata.jsonl").read_text()) == metadata[3]
    samples = sorted(p.name for p in (folders[3] / "samples").iterdir())
    assert samples == ["00000.png", "00001.png"]
    assert Image.open(folders[3] / "samples" / "00000.png").size == (48, 48)
    prompts = sorted(p.stem for p in (out / "dpg" / "prompts").iterdir())
    grids = sorted(p.stem for p in (out / "dpg" / "images").iterdir())
    assert prompts == grids and len(prompts) == 64
    grid = np.asarray(Image.open(out / "dpg" / "images" / f"{prompts[0]}.png"))
    assert grid.shape == (96, 96, 3)
    header = (out / "dpg" / "dpg_bench.csv").read_text().splitlines()[0]
    assert header == ("item_id,text,keywords,proposition_id,dependency,category_broad,"
                      "category_detailed,tuple,question_natural_language")
    manifest = json.loads((out / "manifest.json").read_text())
    (inv,) = manifest["invocations"]
    assert inv["status"] == "finished" and inv["config"]["images_per_prompt"] == 2


def test_export_ground_truth_is_what_the_exact_detector_sees(capsys, tmp_path):
    from emf_bench.world import World, parse

    out = tmp_path / "export"
    assert run(capsys, "world", "export", "--out", str(out), "--images-per-prompt", "1")[0] == 0
    detector = World().detector()
    for folder in sorted((out / "geneval" / "images").iterdir()):
        meaning = parse(json.loads((folder / "metadata.jsonl").read_text())["prompt"])
        found = detector.detect(Image.open(folder / "samples" / "00000.png"))
        assert len(found) == meaning.n_objects
        for group in meaning.groups:
            assert sum(d.label == group.shape and group.color in (None, d.color)
                       for d in found) == group.count


def test_export_refuses_to_overwrite_and_keeps_the_existing_export(capsys, tmp_path):
    out = tmp_path / "export"
    assert run(capsys, "world", "export", "--out", str(out), "--images-per-prompt", "1")[0] == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, _, err = run(capsys, "world", "export", "--out", str(out))
    assert code == 2 and "not empty" in err and "--overwrite" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert run(capsys, "world", "export", "--out", str(out), "--overwrite",
               "--images-per-prompt", "1", "--seed", "1")[0] == 0


def test_interrupted_export_leaves_nothing_half_written(capsys, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = world_export.write_geneval_prompt

    def interrupt_after_a_few(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(world_export, "write_geneval_prompt", interrupt_after_a_few)
    code, _, err = run(capsys, "world", "export", "--out", str(tmp_path / "export"))
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def test_impossible_export_request_exits_2_and_creates_nothing(capsys, tmp_path):
    code, _, err = run(capsys, "world", "export", "--out", str(tmp_path / "e"),
                       "--shapes", "circle,ring")
    assert code == 2 and "a ring needs" in err
    assert list(tmp_path.iterdir()) == []
