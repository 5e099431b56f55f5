"""Paths as a new user gets them wrong: a file where a folder belongs, a folder where a file
does, a missing parent, a wrong extension: one line saying which, exit code 2, nothing made."""

import pytest

from emf_bench.cli import main


@pytest.fixture
def places(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    return tmp_path


CASES = [
    (["eval", "--images", "{file}", "--benchmark", "world-geneval", "--steps", "1"],
     "image folder {file} is a file; a folder is expected"),
    (["eval", "--model", "probe:x", "--benchmark", "geneval", "--geneval-metadata", "{folder}"],
     "GenEval metadata {folder} is a folder; a file is expected"),
    (["eval", "--model", "probe:x", "--benchmark", "dpg", "--dpg-prompts", "{file}",
      "--dpg-csv", "{file}", "--vqa", "world-oracle"],
     "DPG-Bench prompt folder {file} is a file; a folder is expected"),
    (["encoders", "score", "-e", "constant", "--prompts", "{file}", "--run-dir", "{folder}/r"],
     "prompt folder {file} is a file; a folder is expected"),
    (["encoders", "list", "--encoders-dir", "{file}"],
     "encoder card folder {file} is a file; a folder is expected"),
    (["world", "preview", "--world-config", "{folder}", "--out", "{folder}/p.png"],
     "YAML file {folder} is a folder; a file is expected"),
    (["world", "preview", "--out", "{folder}/p.jpg"], "--out must be a .png file"),
    (["world", "preview", "--out", "{folder}/missing/p.png"],
     "folder {folder}/missing does not exist (create it first)"),
    (["world", "preview", "--out", "{folder}"], "--out must be a .png file"),
    (["world", "export", "--out", "{file}"], "--out {file} is a file; a folder is expected"),
    (["world", "export", "--out", "{folder}/a/b"], "folder {folder}/a does not exist"),
    (["generate", "--probe", "{file}", "--prompt", "a", "--out", "{folder}/g.png"],
     "{file} is a file; a probe folder or a checkpoint folder is expected"),
    (["generate", "--probe", "{folder}", "--prompt", "a", "--out", "{folder}/g.gif"],
     "--out must be a .png file"),
    (["report", "{file}"], "run directory {file} is a file; a folder is expected"),
    (["report", "{folder}", "--out", "{folder}/r.pdf"], "--out must be a .html or .htm file"),
]


@pytest.mark.parametrize("args, message", CASES)
def test_wrong_kinds_of_paths_are_named_as_such(places, capsys, monkeypatch, args, message):
    monkeypatch.chdir(places)
    fill = {"file": places / "file.txt", "folder": places / "folder"}
    before = sorted(places.rglob("*"))
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ")
    assert message.format(**fill) in err[-1]
    assert sorted(places.rglob("*")) == before  # nothing created
