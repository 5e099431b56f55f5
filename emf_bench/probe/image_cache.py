"""Prepared training images (pixels at a resolution, or an autoencoder's latents), cached like
text features: one folder per space (`_images/<kind>-<hash of the space's describe()>`) of
append-only safetensors shards, each written atomically as soon as its images are done, so an
interrupted run keeps what it finished. An image's entry is found by a hash of the space and
the image's bytes: another autoencoder, revision, resolution or preprocessing never returns
arrays computed under other settings, and renamed or moved files are still found.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from emf_bench import distributed
from emf_bench.progress import stage, track
from emf_bench.storage import atomic_write_json, ensure_dir, read_shards, write_shard


class ImageStore:
    def __init__(self, root: Path, space_record: dict):
        fingerprint = hashlib.sha256(json.dumps(space_record, sort_keys=True).encode()
                                     ).hexdigest()
        self.fingerprint = fingerprint
        self.folder = ensure_dir(Path(root) / "_images" / f"{space_record['kind']}-"
                                 f"{fingerprint[:16]}", "image cache")
        if not (self.folder / "space.json").exists():
            atomic_write_json(self.folder / "space.json", space_record)
        self._index: dict[str, tuple[Path, int]] | None = None
        self._shards: dict[Path, torch.Tensor] = {}

    def key(self, digest: str) -> str:
        return hashlib.sha256(f"{self.fingerprint}\0{digest}".encode()).hexdigest()[:32]

    @property
    def index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._index = {}
            for shard, keys, _ in read_shards(self.folder, "image"):
                for row, key in enumerate(keys):
                    self._index.setdefault(key, (shard, row))
        return self._index

    def put(self, keys: list[str], arrays: torch.Tensor) -> None:
        shard = write_shard(self.folder, {"arrays": arrays.contiguous()}, keys)
        for row, key in enumerate(keys):
            self.index[key] = (shard, row)

    def get(self, keys: list[str]) -> torch.Tensor:
        from safetensors.torch import load_file

        out = []
        for key in keys:
            shard, row = self.index[key]
            if shard not in self._shards:
                self._shards[shard] = load_file(str(shard))["arrays"]
            out.append(self._shards[shard][row])
        return torch.stack(out)


def encode_images(source, space, cache_root: Path, batch_size: int = 32,
                  flush_every: int = 512) -> tuple[torch.Tensor, dict[str, int]]:
    """Every image of `source` in `space` ((N, C, H, W): uint8 pixels or float32 latents), and
    how many were computed and reused. Under torchrun the missing images are split across
    ranks and rank 0 writes them."""
    from emf_bench.probe.spaces import prepare_image

    store = ImageStore(cache_root, space.describe())
    keys = [store.key(d) for d in source.digests()]
    missing = list(dict.fromkeys(k for k in keys if k not in store.index))
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    mine = missing[distributed.rank()::distributed.world_size()]
    pending_keys: list[str] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        arrays = torch.cat(pending) if pending else None
        gathered = distributed.gather_to_main((list(pending_keys), arrays))
        if gathered is not None:
            parts = [(k, a) for k, a in gathered if k]
            if parts:
                store.put([key for names, _ in parts for key in names],
                          torch.cat([a for _, a in parts]))
        pending_keys.clear()
        pending.clear()

    what = "encoding images" if space.kind == "latents" else "preparing images"
    for start in track(range(0, len(mine), batch_size), what,
                       total=-(-len(mine) // batch_size)):
        part = mine[start:start + batch_size]
        pixels = np.stack([prepare_image(source.image_bytes(first[k]), source.names[first[k]],
                                         space.resolution) for k in part])
        pending_keys.extend(part)
        pending.append(space.encode(pixels))
        if len(pending_keys) >= flush_every and distributed.world_size() == 1:
            flush()
    flush()  # under torchrun: once, every rank together (a collective)
    distributed.barrier()
    store._index = None  # rank 0 wrote the other ranks' arrays: read them again
    counts = {"computed": len(missing), "reused": len(set(keys)) - len(missing)}
    stage(f"{space.kind}: {counts['computed']} image(s) computed, {counts['reused']} reused "
          f"from the image cache ({store.folder})")
    return store.get(keys), counts
