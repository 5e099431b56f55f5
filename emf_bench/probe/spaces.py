"""The space a probe learns in: pixels at a chosen resolution, or the latents of a diffusers
autoencoder (`AutoencoderKL` as in Stable Diffusion, `AutoencoderDC` as in SANA).

Images are centre-cropped and resized once; latents are the autoencoder's posterior mean (KL)
or its latent (DC), shifted and scaled by its config's `shift_factor` and `scaling_factor`, so
that they have about unit variance, as the diffusion models that use them do. Sampling undoes
both and decodes. A space's `describe()` is everything that changes its arrays: it keys the
image cache (probe/image_cache.py) and travels with the probe's checkpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emf_bench.errors import EmfBenchError

PREPROCESS = "shorter side resized to the resolution (bicubic), centre crop"
AUTOENCODERS = ("AutoencoderKL", "AutoencoderDC")


def prepare_image(data: bytes, where: str, resolution: int) -> np.ndarray:
    """(resolution, resolution, 3) uint8 from an image file's bytes (see PREPROCESS); an image
    already at that size is taken as it is."""
    from PIL import Image

    from emf_bench.images import decode_image

    pixels, _ = decode_image(data, where)
    height, width = pixels.shape[:2]
    if (height, width) == (resolution, resolution):
        return pixels
    scale = resolution / min(height, width)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(
        0, 2, 3, 1).cpu().numpy()


class PixelSpace:
    kind = "pixels"
    channels = 3

    def __init__(self, resolution: int):
        if not 8 <= resolution <= 1024:
            raise EmfBenchError(f"--resolution must be 8 to 1024 pixels, got {resolution}")
        self.resolution = self.size = resolution

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "resolution": self.resolution, "preprocess": PREPROCESS}

    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        """(B, R, R, 3) uint8 -> (B, 3, R, R) uint8: pixels are stored as they are."""
        return torch.from_numpy(np.array(pixels, copy=True)).permute(0, 3, 1, 2).contiguous()

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return to_uint8(x)


def _content_signature(folder: Path) -> str:
    """sha256 over the names and bytes of every file of a local model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:32]


class LatentSpace:
    """A diffusers autoencoder's latent space at a pixel resolution (see the module
    docstring). `vae`: a Hub id or a local folder (a pipeline folder's `vae/` is found)."""

    kind = "latents"

    def __init__(self, vae: str, resolution: int, revision: str | None = None,
                 device: str | torch.device = "cpu", expect: dict | None = None):
        """`expect`: the record of the space a probe was trained in; loading refuses an
        autoencoder whose weights differ from it."""
        self.pixels = PixelSpace(resolution)
        self.resolution, self.ref, self.revision = resolution, vae, revision
        self.device = torch.device(device)
        self.model, self.folder, self.subfolder = self._load(vae, revision)
        config = self.model.config
        self.class_name = type(self.model).__name__
        self.scaling = float(getattr(config, "scaling_factor", None) or 1.0)
        self.shift = float(getattr(config, "shift_factor", None) or 0.0)
        with torch.no_grad():
            probe = torch.zeros(1, 3, resolution, resolution, device=self.device)
            shape = self._encode_raw(probe).shape[1:]
        self.channels, self.size = int(shape[0]), int(shape[1])
        self.weights = self._signature()
        if expect is not None and expect.get("weights") != self.weights:
            raise EmfBenchError(f"autoencoder {vae} is not the one this probe was trained with "
                                f"(weights {expect.get('weights')}, found {self.weights}); "
                                f"its latents would decode wrongly")

    def _load(self, vae: str, revision: str | None):
        try:
            import diffusers
        except ImportError as err:
            raise EmfBenchError(f"--vae needs the [diffusers] extra: {err}") from None
        from emf_bench.text.base import is_local_path, library_logs, offline

        path = Path(vae).expanduser()
        if is_local_path(vae) and not path.exists():
            raise EmfBenchError(f"autoencoder path {vae} does not exist")
        diffusers.utils.logging.disable_progress_bar()
        errors = []
        for subfolder in (None, "vae"):
            if path.is_dir() and not (path / (subfolder or "") / "config.json").exists():
                continue
            try:
                # any model class reads a config
                config = diffusers.AutoencoderKL.load_config(
                    vae, subfolder=subfolder, revision=revision, local_files_only=offline())
            except Exception as err:  # not there, or the Hub is off
                errors.append(str(err).splitlines()[0])
                continue
            name = config.get("_class_name")
            if name not in AUTOENCODERS:
                raise EmfBenchError(f"--vae {vae}: {name or 'its config'} is not an "
                                    f"autoencoder emf-bench encodes with "
                                    f"({', '.join(AUTOENCODERS)})")
            try:
                with library_logs(diffusers):
                    model = getattr(diffusers, name).from_pretrained(
                        vae, subfolder=subfolder, revision=revision,
                        local_files_only=offline())
            except Exception as err:
                raise EmfBenchError(f"cannot load autoencoder {vae}: "
                                    f"{str(err).splitlines()[0]}") from None
            model.requires_grad_(False)
            return model.to(self.device).eval(), path if path.is_dir() else None, subfolder
        raise EmfBenchError(f"cannot load autoencoder {vae}: no autoencoder config found "
                            f"({'; '.join(errors) or 'no config.json there or in vae/'})")

    def _signature(self) -> str:
        from emf_bench.text.base import model_signature

        if self.folder is not None:
            return _content_signature(self.folder / (self.subfolder or ""))
        return model_signature(self.ref, self.revision)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "resolution": self.resolution, "preprocess": PREPROCESS,
                "vae": self.ref, "revision": self.revision, "subfolder": self.subfolder,
                "class": self.class_name, "weights": self.weights,
                "scaling_factor": self.scaling, "shift_factor": self.shift,
                "latent": "posterior mean" if self.class_name == "AutoencoderKL" else "latent",
                "shape": [self.channels, self.size, self.size]}

    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.encode(x)
        return out.latent_dist.mean if hasattr(out, "latent_dist") else out.latent

    @torch.no_grad()
    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        """(B, R, R, 3) uint8 -> (B, C, h, w) float32 latents, shifted and scaled."""
        x = self.pixels.encode(pixels).float().div(127.5).sub(1.0).to(self.device)
        return ((self._encode_raw(x) - self.shift) * self.scaling).float().cpu()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        x = self.model.decode(z.to(self.device).float() / self.scaling + self.shift).sample
        return to_uint8(x)


def space_from_record(record: dict | None, device: str | torch.device = "cpu"):
    """The space a checkpoint records (None: the world's pixels, nothing to decode)."""
    if not record or record.get("kind") == "pixels":
        return PixelSpace(int((record or {}).get("resolution", 32)))
    return LatentSpace(record["vae"], int(record["resolution"]), record.get("revision"),
                       device=device, expect=record)
