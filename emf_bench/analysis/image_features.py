"""Image features for discriminability: which images count as similar.

- `world-scene`: exact, for the world only: similarity of the scenes themselves (objects by
  shape and colour, shapes, colours, coarse layout), no pixels involved.
- `pixels`: a cheap built-in: the image shrunk to 8x8, centred on the background gray.
- `hf:<id or path>`: a transformers vision model, as the paper uses DINO: DINOv2/DINOv3 (CLS
  token) or CLIP vision (projected image embedding), from a Hub id or a local folder.

Features come back L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class SceneFeatures:
    """Exact scene similarity of the world (not an image model; labelled `world-scene`)."""

    name = "world-scene"

    def __init__(self, world):
        self.config = world.config
        self.kinds = [(s, c) for s in self.config.shapes for c in self.config.colors]
        grid = (np.arange(3) + 0.5) / 3
        self.cells = np.array([(x, y) for y in grid for x in grid])  # 3x3 layout cells

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False}

    def features(self, pool, indices: np.ndarray) -> np.ndarray:
        if not hasattr(pool, "scenes"):
            raise EmfBenchError("the world-scene image features need a world pool; use "
                                "--image-features pixels or hf:<model> for other pools")
        shapes, colors = list(self.config.shapes), list(self.config.colors)
        rows = []
        for scene in pool.scenes(indices):
            kind = np.zeros(len(self.kinds))
            shape = np.zeros(len(shapes))
            color = np.zeros(len(colors))
            layout = np.zeros((len(shapes), len(self.cells)))
            for o in scene.objects:
                kind[self.kinds.index((o.shape, o.color))] += 1
                shape[shapes.index(o.shape)] += 1
                color[colors.index(o.color)] += 1
                d2 = ((self.cells - (o.x, o.y)) ** 2).sum(axis=1)
                layout[shapes.index(o.shape)] += np.exp(-d2 / (2 * (1 / 3) ** 2))
            blocks = [kind, shape, color, layout.ravel()]
            rows.append(np.concatenate([b / max(np.linalg.norm(b), 1e-12) for b in blocks]))
        return _normalise(np.stack(rows))


class PixelFeatures:
    """8x8 RGB thumbnails centred on the background gray (labelled `pixels`)."""

    name = "pixels"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "size": 8}

    def features(self, pool, indices: np.ndarray) -> np.ndarray:
        from PIL import Image

        rows = []
        for image in pool.images(indices):
            small = Image.fromarray(image).resize((8, 8), Image.Resampling.BOX)
            rows.append((np.asarray(small, dtype=np.float32) - 128.0).ravel() / 128.0)
        return _normalise(np.stack(rows))


class HFVisionFeatures:
    """A transformers vision model: DINO-style models give their CLS token, CLIP vision its
    projected embedding. `model` is a Hub id or a local folder."""

    def __init__(self, model: str, device: str | None = "cpu", batch_size: int = 32):
        import torch
        import transformers

        from emf_bench.text.base import resolve_device
        from emf_bench.text.card import EncoderCard
        from emf_bench.text.hf import hf_load

        self.model_id = model
        self.name = f"hf:{model}"
        self.device = resolve_device(device)
        self.batch_size = batch_size
        card = EncoderCard(name="image-features", backend="transformers-clip", model=model)
        self.processor = hf_load(transformers.AutoImageProcessor.from_pretrained, card,
                                 "image processor")
        config = hf_load(transformers.AutoConfig.from_pretrained, card, "config")
        if config.model_type == "clip":
            loader = transformers.CLIPVisionModelWithProjection.from_pretrained
        else:
            loader = transformers.AutoModel.from_pretrained
        self.model = hf_load(loader, card, "vision model").to(self.device).eval()
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "model": self.model_id}

    def features(self, pool, indices: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = []
        for start in range(0, len(indices), self.batch_size):
            images = pool.images(indices[start:start + self.batch_size])
            inputs = self.processor(images=images, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                result = self.model(**inputs)
            if getattr(result, "image_embeds", None) is not None:
                emb = result.image_embeds
            else:
                emb = result.last_hidden_state[:, 0]  # the CLS token
            out.append(emb.float().cpu().numpy())
        return _normalise(np.concatenate(out))


IMAGE_FEATURES = ("world-scene", "pixels", "hf:<model id or path>")


def image_features(spec: str, world=None, device: str | None = "cpu"):
    if spec == "world-scene":
        if world is None:
            raise EmfBenchError("world-scene image features need the world pool")
        return SceneFeatures(world)
    if spec == "pixels":
        return PixelFeatures()
    if spec.startswith("hf:") and len(spec) > 3:
        return HFVisionFeatures(spec[3:], device=device)
    raise EmfBenchError(f"unknown image features {spec!r}; choose one of "
                        f"{', '.join(IMAGE_FEATURES)}")
