"""A user's image-caption data for `train-probe --data`, from a path (nothing is downloaded):

- an image folder with captions beside the images, as Hugging Face's `imagefolder` has them:
  `metadata.jsonl` or `metadata.csv` with a `file_name` and a caption column (`text`);
- a COCO-format captions file (`captions_*.json`) with its image folder (`--data-images`);
- a `datasets` dataset saved with `save_to_disk`, or `hf:<id>` from the local Hub cache.

Every source gives the same thing: per image, its bytes (read when needed) and its captions.
Each (image, caption) pair is one training example; the content of every image is hashed, so
what a probe was trained on is identified by content, not by paths.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError

FORMATS = ("auto", "imagefolder", "coco", "datasets")
CAPTION_COLUMNS = ("text", "caption", "prompt")  # looked for in this order
METADATA = ("metadata.jsonl", "metadata.csv")


@dataclass
class CaptionedImages:
    kind: str  # imagefolder | coco | datasets
    location: str
    names: list[str]  # per image: where it is, for messages
    captions: list[list[str]]  # per image, one or more
    read: Callable[[int], bytes]
    notes: list[str] = field(default_factory=list)
    _digests: list[str] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def image_bytes(self, i: int) -> bytes:
        data = self.read(i)
        if not data:
            raise EmfBenchError(f"image {self.names[i]} is empty (0 bytes)")
        return data

    def digests(self) -> list[str]:
        """sha256 of every image's bytes (read once)."""
        if self._digests is None:
            from emf_bench.progress import track

            self._digests = [hashlib.sha256(self.image_bytes(i)).hexdigest()
                             for i in track(range(len(self)), f"hashing {self.kind} images",
                                            total=len(self))]
        return self._digests

    def content(self) -> str:
        """One hash over every image's bytes and captions, in order."""
        digest = hashlib.sha256()
        for d, captions in zip(self.digests(), self.captions, strict=True):
            digest.update(d.encode())
            digest.update(json.dumps(captions).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "images": len(self),
                "examples": sum(len(c) for c in self.captions), "content": self.content()}


def read_source(data: str, fmt: str = "auto", images: Path | None = None,
                caption_column: str | None = None, split: str = "train") -> CaptionedImages:
    """The image-caption pairs at `data` (see the module docstring)."""
    from emf_bench.errors import unknown_name

    if fmt not in FORMATS:
        raise unknown_name("data format", fmt, FORMATS)
    if fmt == "auto":
        fmt = _detect(data)
    if images is not None and fmt != "coco":
        raise EmfBenchError(f"--data-images names the image folder of a COCO captions file; "
                            f"{data} is read as {fmt}")
    if fmt == "coco":
        return read_coco(Path(data), images)
    if fmt == "imagefolder":
        return read_imagefolder(Path(data), caption_column)
    return read_dataset(data, caption_column, split)


def _detect(data: str) -> str:
    if data.startswith("hf:"):
        return "datasets"
    path = Path(data).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise EmfBenchError(f"--data {path}: a file is read as a COCO captions .json; for an "
                            f"image folder give its folder")
    if not path.exists():
        raise EmfBenchError(f"--data {path} does not exist")
    if any((path / m).exists() for m in METADATA):
        return "imagefolder"
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return "datasets"
    raise EmfBenchError(
        f"--data {path}: no captions found: an image folder needs metadata.jsonl or "
        f"metadata.csv (columns file_name and text, Hugging Face's imagefolder layout); a "
        f"dataset saved with save_to_disk has dataset_info.json")


def _file_reader(root: Path, names: list[str]) -> Callable[[int], bytes]:
    def read(i: int) -> bytes:
        try:
            return (root / names[i]).read_bytes()
        except OSError as err:
            raise EmfBenchError(f"cannot read image {root / names[i]}: "
                                f"{err.strerror or err}") from None
    return read


def _check_files(root: Path, names: list[str], where: Callable[[int], str]) -> None:
    resolved = root.resolve()
    for i, name in enumerate(names):
        path = (root / name).resolve()
        if resolved not in path.parents:
            raise EmfBenchError(f"{where(i)}: file_name {name!r} points outside {root}")
        if not path.is_file():
            raise EmfBenchError(f"{where(i)}: image {root / name} does not exist")


def read_coco(captions_file: Path, images: Path | None) -> CaptionedImages:
    from emf_bench.analysis.pools import read_coco_captions
    from emf_bench.inputs import existing_dir

    if images is None:
        raise EmfBenchError(f"--data {captions_file} is a COCO captions file: name its image "
                            f"folder with --data-images")
    root = existing_dir(images, "--data-images")
    names, captions, ids = read_coco_captions(captions_file)
    _check_files(root, names, lambda i: f"{captions_file}: image id {ids[i]}")
    return CaptionedImages("coco", str(captions_file), [str(root / n) for n in names], captions,
                           _file_reader(root, names))


def _metadata_rows(folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    found = [folder / m for m in METADATA if (folder / m).exists()]
    if len(found) > 1:
        raise EmfBenchError(f"image folder {folder} has both metadata.jsonl and metadata.csv; "
                            f"keep one")
    path = found[0]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise EmfBenchError(f"cannot read {path}: {err}") from None
    if path.suffix == ".csv":
        return path, list(csv.DictReader(text.splitlines()))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EmfBenchError(f"{path}, line {n}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise EmfBenchError(f"{path}, line {n}: a JSON object is expected")
        rows.append(row)
    return path, rows


def _caption_column(columns: list[str], asked: str | None, where: str) -> str:
    if asked is not None:
        if asked not in columns:
            raise EmfBenchError(f"{where} has no caption column {asked!r}; its columns: "
                                f"{', '.join(columns)}")
        return asked
    for name in CAPTION_COLUMNS:
        if name in columns:
            return name
    raise EmfBenchError(f"{where} has no caption column ({' or '.join(CAPTION_COLUMNS)}); its "
                        f"columns: {', '.join(columns)}; name one with --caption-column")


def _caption(value: Any, where: str) -> list[str]:
    """A cell's captions: a string, or a list of strings (several captions of one image)."""
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str):
            raise EmfBenchError(f"{where}: caption {v!r} is not text")
        if text := " ".join(v.split()):
            out.append(text)
    if not out:
        raise EmfBenchError(f"{where}: empty caption")
    return out


def read_imagefolder(folder: Path, caption_column: str | None = None) -> CaptionedImages:
    from emf_bench.inputs import existing_dir

    folder = existing_dir(folder, "--data")
    if not any((folder / m).exists() for m in METADATA):
        raise EmfBenchError(f"image folder {folder} has no captions: add metadata.jsonl or "
                            f"metadata.csv with file_name and text columns")
    path, rows = _metadata_rows(folder)
    if not rows:
        raise EmfBenchError(f"{path} lists no images")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if "file_name" not in columns:
        raise EmfBenchError(f"{path} has no file_name column; its columns: {', '.join(columns)}")
    column = _caption_column(columns, caption_column, str(path))
    by_file: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 1):
        where = f"{path}, row {n}"
        name = row.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise EmfBenchError(f"{where}: no file_name")
        by_file.setdefault(name, []).extend(_caption(row.get(column), where))
    names = list(by_file)
    _check_files(folder, names, lambda i: f"{path} ({names[i]})")
    listed = {(folder / n).resolve() for n in names}
    unlisted = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (
        ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
        and p.resolve() not in listed)
    notes = [f"{unlisted} image(s) in {folder} have no row in {path.name} and are not used"
             ] if unlisted else []
    return CaptionedImages("imagefolder", str(folder), [str(folder / n) for n in names],
                           [by_file[n] for n in names], _file_reader(folder, names), notes)


def read_dataset(data: str, caption_column: str | None = None, split: str = "train"
                 ) -> CaptionedImages:
    """A `datasets` dataset: a folder saved with `save_to_disk`, or `hf:<id>` (the local Hub
    cache; --offline keeps it there). Its image column is the one of type Image."""
    try:
        import datasets
    except ImportError as err:
        raise EmfBenchError(f"--data {data} needs the `datasets` package (pip install "
                            f"'emf-bench[data]'): {err}") from None
    try:
        if data.startswith("hf:"):
            loaded = datasets.load_dataset(data[3:], split=split)
        else:
            loaded = datasets.load_from_disk(str(Path(data).expanduser()))
    except Exception as err:  # datasets raises many types for a missing or broken dataset
        raise EmfBenchError(f"cannot load dataset {data}: {str(err).splitlines()[0]}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise EmfBenchError(f"dataset {data} has no split {split!r}; its splits: "
                                f"{', '.join(loaded)} (choose with --data-split)")
        loaded = loaded[split]
    features = loaded.features
    image_columns = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    if len(image_columns) != 1:
        raise EmfBenchError(f"dataset {data} needs exactly one image column (of type Image), "
                            f"has {image_columns or 'none'}; its columns: {', '.join(features)}")
    image_column = image_columns[0]
    column = _caption_column(list(features), caption_column, f"dataset {data}")
    raw = loaded.cast_column(image_column, datasets.Image(decode=False))
    captions = [_caption(v, f"dataset {data}, row {n}") for n, v in enumerate(raw[column])]
    cells = raw[image_column]

    def read(i: int) -> bytes:
        cell = cells[i] or {}
        if cell.get("bytes"):
            return cell["bytes"]
        if cell.get("path"):
            try:
                return Path(cell["path"]).read_bytes()
            except OSError as err:
                raise EmfBenchError(f"dataset {data}, row {i}: cannot read image "
                                    f"{cell['path']}: {err.strerror or err}") from None
        raise EmfBenchError(f"dataset {data}, row {i}: no image")

    return CaptionedImages("datasets", data, [f"{data}, row {i}" for i in range(len(raw))],
                           captions, read)
