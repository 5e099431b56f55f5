import json

import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.rundir import FORMAT_VERSION, MANIFEST, RunDir, read_manifest


def test_invocations_are_recorded_with_config_versions_and_times(tmp_path):
    run = RunDir.open(tmp_path / "run")
    with run.invocation("world export", {"a": 1}, seed=3) as entry:
        assert read_manifest(run.path)["invocations"][0]["status"] == "running"
        entry["summary"] = {"n": 2}
    manifest = read_manifest(run.path)
    (inv,) = manifest["invocations"]
    assert inv["status"] == "finished" and inv["seed"] == 3 and inv["config"] == {"a": 1}
    assert inv["summary"] == {"n": 2}
    assert inv["started"] <= inv["finished"]
    assert "python" in inv["versions"] and inv["host"]["cpus"] >= 1
    assert manifest["format_version"] == FORMAT_VERSION


def test_failures_and_interruptions_are_recorded_and_later_runs_append(tmp_path):
    run = RunDir.open(tmp_path)
    with pytest.raises(ValueError), run.invocation("a", {}):
        raise ValueError("boom\nsecond line")
    with pytest.raises(KeyboardInterrupt), RunDir.open(tmp_path).invocation("b", {}):
        raise KeyboardInterrupt
    statuses = [(i["command"], i["status"]) for i in read_manifest(tmp_path)["invocations"]]
    assert statuses == [("a", "failed"), ("b", "interrupted")]


@pytest.mark.parametrize("content, message", [
    ("{not json", "corrupt manifest"),
    (json.dumps({"tool": "other"}), "not an emf-bench manifest"),
    (json.dumps({"tool": "emf-bench", "format_version": FORMAT_VERSION + 1}),
     "newer than this emf-bench understands"),
])
def test_bad_manifests_are_one_clear_error(tmp_path, content, message):
    (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(EmfBenchError, match=message):
        read_manifest(tmp_path)


def test_a_directory_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(EmfBenchError, match="not an emf-bench run directory"):
        read_manifest(tmp_path)
    with pytest.raises(EmfBenchError, match="does not exist"):
        RunDir.open(tmp_path / "missing", create=False)


def test_a_torn_manifest_is_kept_aside_by_a_command_that_writes(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text('{"tool": "emf-bench", "invoc')
    (tmp_path / "results.txt").write_text("kept")
    with RunDir.open(tmp_path).invocation("again", {}):
        pass
    assert [i["command"] for i in read_manifest(tmp_path)["invocations"]] == ["again"]
    (aside,) = tmp_path.glob(f"{MANIFEST}.unreadable-*")
    assert aside.read_text() == '{"tool": "emf-bench", "invoc'
    assert (tmp_path / "results.txt").read_text() == "kept"
    assert "kept as manifest.json.unreadable-" in capsys.readouterr().err
