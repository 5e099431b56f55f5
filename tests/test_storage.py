import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from emf_bench.errors import EmfBenchError
from emf_bench.storage import (
    atomic_directory,
    atomic_path,
    atomic_save_png,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert os.listdir(target.parent) == ["a.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_written_files_and_directories_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_directory(tmp_path / "d") as d:
            (d / "inner").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_directory_refuses_non_empty_targets_and_replaces_with_overwrite(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        (d / "a").write_text("1")
    with pytest.raises(EmfBenchError, match="not empty"), atomic_directory(out):
        pass
    with atomic_directory(out, overwrite=True) as d:
        (d / "b").write_text("2")
    assert sorted(os.listdir(out)) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_interrupted_directory_build_leaves_nothing_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        (d / "keep").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_directory(out, overwrite=True) as d:
        (d / "partial").write_text("2")
        raise KeyboardInterrupt
    assert os.listdir(out) == ["keep"]
    assert os.listdir(tmp_path) == ["out"]


def test_ensure_dir_reports_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EmfBenchError, match="a file is in the way"):
        ensure_dir(tmp_path / "file" / "sub")


def test_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    atomic_save_png(tmp_path / "x.png", image)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)
