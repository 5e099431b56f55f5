"""A user's image-caption data (`train-probe --data`): every source format read the same way,
and every bad input refused with one line naming what and where."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from emf_bench.errors import EmfBenchError
from emf_bench.probe.sources import read_source
from emf_bench.probe.spaces import PixelSpace, prepare_image


def _png(path, size=(20, 12), color=(200, 10, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


def _folder(tmp_path, rows, kind="jsonl"):
    for row in rows:
        name = row.get("file_name", row.get("name"))
        if not (tmp_path / name).exists() and row.get("_make", True):
            _png(tmp_path / name)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    if kind == "jsonl":
        (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in clean))
    else:
        cols = list(clean[0])
        lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in clean]
        (tmp_path / "metadata.csv").write_text("\n".join(lines))
    return tmp_path


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_imagefolder_pairs_each_image_with_its_captions(tmp_path, kind):
    folder = _folder(tmp_path, [{"file_name": "a.png", "text": "a red  square"},
                                {"file_name": "sub/b.png", "text": "a blue circle"},
                                {"file_name": "a.png", "text": "red box"}], kind)
    data = read_source(str(folder))
    assert data.kind == "imagefolder"
    assert data.captions == [["a red square", "red box"], ["a blue circle"]]
    assert data.describe()["examples"] == 3
    assert len(set(data.digests())) == 1  # identical pixels, identical content
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    folder.rename(moved)
    assert read_source(str(moved)).content() == data.content()  # content, not paths


def test_coco_captions_with_their_image_folder(tmp_path):
    _png(tmp_path / "img" / "1.jpg")
    _png(tmp_path / "img" / "2.jpg", color=(0, 0, 255))
    (tmp_path / "captions.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
        "annotations": [{"image_id": 2, "caption": "blue"}, {"image_id": 1, "caption": "red"},
                        {"image_id": 2, "caption": "a blue thing"}]}))
    data = read_source(str(tmp_path / "captions.json"), images=tmp_path / "img")
    assert data.kind == "coco"
    assert data.captions == [["blue", "a blue thing"], ["red"]]
    with pytest.raises(EmfBenchError, match="--data-images"):
        read_source(str(tmp_path / "captions.json"))


def test_saved_datasets_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    _png(tmp_path / "x.png")
    ds = datasets.Dataset.from_dict(
        {"image": [str(tmp_path / "x.png")] * 2, "caption": ["one", "two"]}
    ).cast_column("image", datasets.Image())
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    data = read_source(str(tmp_path / "saved"))
    assert data.kind == "datasets" and data.captions == [["one"], ["two"]]
    assert data.image_bytes(0) == (tmp_path / "x.png").read_bytes()
    with pytest.raises(EmfBenchError, match=r"no split 'test'.*train"):
        read_source(str(tmp_path / "saved"), split="test")
    with pytest.raises(EmfBenchError, match="no caption column 'text'"):
        read_source(str(tmp_path / "saved"), caption_column="text")


@pytest.mark.parametrize("rows, message", [
    ([{"file_name": "a.png", "_make": False, "text": "x"}], r"a\.png does not exist"),
    ([{"file_name": "../a.png", "text": "x"}], "points outside"),
    ([{"file_name": "a.png", "text": "  "}], "row 1: empty caption"),
    ([{"file_name": "a.png", "text": 3}], "row 1: caption 3 is not text"),
    ([{"file_name": "a.png", "label": "x"}], "no caption column"),
    ([{"name": "a.png", "text": "x"}], "no file_name column"),
])
def test_bad_imagefolders_say_what_and_where(tmp_path, rows, message):
    (tmp_path / "d").mkdir()
    if rows[0].get("file_name") == "../a.png":
        _png(tmp_path / "a.png")
    folder = _folder(tmp_path / "d", rows)
    with pytest.raises(EmfBenchError, match=message) as err:
        read_source(str(folder))
    assert "\n" not in str(err.value)


def test_folder_without_captions_and_other_bad_paths(tmp_path):
    _png(tmp_path / "a.png")
    with pytest.raises(EmfBenchError, match=r"no captions found.*metadata.jsonl"):
        read_source(str(tmp_path))
    with pytest.raises(EmfBenchError, match="does not exist"):
        read_source(str(tmp_path / "nope"))
    with pytest.raises(EmfBenchError, match=r"COCO captions .json"):
        read_source(str(tmp_path / "a.png"))
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\nnot json\n')
    with pytest.raises(EmfBenchError, match=r"metadata.jsonl, line 2: not JSON"):
        read_source(str(tmp_path))
    (tmp_path / "metadata.csv").write_text("file_name,text\na.png,x\n")
    with pytest.raises(EmfBenchError, match=r"both metadata.jsonl and metadata.csv"):
        read_source(str(tmp_path))


def test_unlisted_images_are_noted_and_broken_ones_named_when_prepared(tmp_path):
    _png(tmp_path / "extra.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    folder = _folder(tmp_path, [{"file_name": "broken.png", "text": "x"},
                                {"file_name": "a.png", "text": "y"}])
    data = read_source(str(folder))
    assert any("1 image(s)" in n and "not used" in n for n in data.notes)
    with pytest.raises(EmfBenchError, match=r"broken.png cannot be decoded"):
        prepare_image(data.image_bytes(0), data.names[0], 16)


def test_mixed_sizes_and_modes_are_prepared_alike(tmp_path):
    shapes = []
    for i, (size, mode) in enumerate([((40, 20), "RGB"), ((9, 30), "L"), ((16, 16), "RGBA"),
                                      ((50, 50), "P"), ((33, 17), "I;16")]):
        _png(tmp_path / f"{i}.png", size, (120, 40, 40), mode)
        pixels = prepare_image((tmp_path / f"{i}.png").read_bytes(), f"{i}.png", 16)
        shapes.append((pixels.shape, str(pixels.dtype)))
    assert set(shapes) == {((16, 16, 3), "uint8")}
    # centre crop: the middle of a wide image is kept
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = prepare_image((tmp_path / "wide.png").read_bytes(), "wide.png", 10)
    assert out.min() >= 250
    with pytest.raises(EmfBenchError, match="--resolution must be 8 to 1024"):
        PixelSpace(4)
