"""Probe checkpoints: atomic folders of safetensors weights plus a JSON state.

    <probe dir>/latest.json                     {"checkpoint": "step-0000500", "step": 500}
    <probe dir>/checkpoints/step-0000500/       model.safetensors (raw weights)
                                                ema.safetensors (the weights used for sampling)
                                                conditioning.safetensors (feature statistics)
                                                optimizer.pt (optimizer and RNG state; loaded
                                                with weights_only=True)
                                                state.json (step, time, config, encoder card)
    <probe dir>/train_log.csv

A checkpoint folder is built under a temporary name and renamed into place, and latest.json
moves to it only then, so an interrupted save never leaves a half checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emf_bench.errors import EmfBenchError
from emf_bench.storage import atomic_directory, atomic_write_json
from emf_bench.typed import check_value

CHECKPOINT_VERSION = 1
LATEST = "latest.json"

if TYPE_CHECKING:  # torch is imported where weights are saved or loaded: the report reads
    import torch  # probe states without it


def trained_guidance(train: dict[str, Any]) -> float:
    """The guidance scale a probe's training state says it learned into its velocity: the
    MeanFlow objective's `train_guidance` (1.0, none, for flow matching and older probes)."""
    return float(train.get("train_guidance", 1.0)) if train.get("objective") == "meanflow" \
        else 1.0


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    conditioning: dict[str, torch.Tensor]
    training: dict[str, Any] | None  # optimizer and RNG state (None when not asked for)
    # sha256 of the sampling weights' and feature statistics' files: what a generator's
    # results depend on, wherever the probe folder lies
    fingerprint: str = ""


# What a checkpoint's state.json must hold for a probe to be rebuilt from it.
STATE_FIELDS = {"step": int, "seconds": float, "encoder": dict, "probe": dict, "train": dict}


def save_checkpoint(probe_dir: Path, model: torch.nn.Module, ema: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, rng: dict[str, torch.Tensor],
                    stats: dict[str, torch.Tensor], state: dict[str, Any], keep: int = 2) -> Path:
    import torch
    from safetensors.torch import save_file

    name = f"step-{state['step']:07d}"
    root = Path(probe_dir) / "checkpoints"
    with atomic_directory(root / name, overwrite=True) as tmp:
        save_file(_contiguous(model.state_dict()), str(tmp / "model.safetensors"))
        save_file(_contiguous(ema.state_dict()), str(tmp / "ema.safetensors"))
        save_file(_contiguous(stats), str(tmp / "conditioning.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({**state, "version": CHECKPOINT_VERSION},
                                                   indent=2))
    atomic_write_json(Path(probe_dir) / LATEST, {"checkpoint": name, "step": state["step"]})
    others = sorted(p for p in root.glob("step-*") if p.name != name)
    for old in others[: max(len(others) - (keep - 1), 0)]:  # keep the newest `keep` in all
        shutil.rmtree(old, ignore_errors=True)
    return root / name


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def checkpoint_dir(path: Path) -> Path:
    """A checkpoint folder, from itself or from a probe folder (its latest checkpoint)."""
    path = Path(path)
    if path.is_file():
        raise EmfBenchError(f"{path} is a file; a probe folder or a checkpoint folder is "
                            f"expected")
    if (path / "state.json").exists():
        return path
    latest = path / LATEST
    if not latest.exists():
        raise EmfBenchError(f"{path} is neither a probe folder (no {LATEST}) nor a checkpoint "
                            f"(no state.json)")
    try:
        name = json.loads(latest.read_text(encoding="utf-8"))["checkpoint"]
        if not isinstance(name, str) or not (path / "checkpoints" / name).is_dir():
            raise ValueError(f"no checkpoint folder {name!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        newest = sorted((path / "checkpoints").glob("step-*"))
        if not newest:
            raise EmfBenchError(f"corrupt {latest} ({err}) and no checkpoint folder under "
                                f"{path / 'checkpoints'}; train the probe again") from None
        from emf_bench.progress import note

        note(f"{latest} is unreadable ({err}); using the newest checkpoint, {newest[-1].name}")
        return newest[-1]
    return path / "checkpoints" / name


def has_checkpoint(probe_dir: Path) -> bool:
    return (Path(probe_dir) / LATEST).exists()


def load_checkpoint(path: Path, training: bool = False) -> Checkpoint:
    """Read and check a checkpoint (one clear line for anything missing or corrupt)."""
    import torch
    from safetensors.torch import load

    folder = checkpoint_dir(path)
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmfBenchError(f"checkpoint {folder} is missing state.json") from None
    except (OSError, ValueError) as err:
        raise EmfBenchError(f"corrupt checkpoint state {folder / 'state.json'}: {err}") from None
    _check_state(state, folder / "state.json")
    tensors, digest = {}, hashlib.sha256()
    for name in ("model", "ema", "conditioning"):
        file = folder / f"{name}.safetensors"
        try:
            data = file.read_bytes()
            tensors[name] = load(data)
        except FileNotFoundError:
            raise EmfBenchError(f"checkpoint {folder} is missing {file.name}") from None
        except Exception as err:  # safetensors raises its own error types
            raise EmfBenchError(f"corrupt checkpoint file {file}: {err}") from None
        if name != "model":
            digest.update(hashlib.sha256(data).digest())
        for key, tensor in tensors[name].items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise EmfBenchError(f"checkpoint file {file}: tensor {key!r} holds NaN or "
                                    f"infinite values; resume from an earlier checkpoint or "
                                    f"retrain the probe")
    extra = None
    if training:
        try:
            extra = torch.load(folder / "optimizer.pt", weights_only=True)
        except FileNotFoundError:
            raise EmfBenchError(f"checkpoint {folder} is missing optimizer.pt") from None
        except Exception as err:
            raise EmfBenchError(f"corrupt checkpoint file {folder / 'optimizer.pt'}: "
                                f"{str(err).splitlines()[0]}") from None
    return Checkpoint(folder, state, tensors["model"], tensors["ema"], tensors["conditioning"],
                      extra, digest.hexdigest())


def _check_state(state: Any, file: Path) -> None:
    if not isinstance(state, dict):
        raise EmfBenchError(f"corrupt checkpoint state {file}: not a JSON object")
    version = state.get("version", 0)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise EmfBenchError(f"checkpoint {file.parent} comes from a newer emf-bench (version "
                            f"{state.get('version')})")
    for key, kind in STATE_FIELDS.items():
        check_value(state.get(key), kind, repr(key), f"corrupt checkpoint state {file}")
