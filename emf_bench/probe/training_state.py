"""What a probe's training carries besides its loop (probe/trainer.py): the EMA, a flow-matching
probe's weights mapped into a MeanFlow one, gradients averaged across torchrun ranks, and the
training log (CSV, rewritten atomically with every checkpoint)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from emf_bench import distributed
from emf_bench.errors import EmfBenchError
from emf_bench.storage import atomic_write_text

LOG_COLUMNS = ("step", "seconds", "phase", "lr", "loss", "mse", "images_per_s")


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, m in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(m, 1 - d)


def init_from_flow_matching(model: torch.nn.Module, fm_state: dict[str, torch.Tensor]) -> None:
    """Load a flow-matching probe's weights into a MeanFlow probe: the single time embedding
    initialises both phi_end and phi_interval."""
    mapped = {}
    for key, value in fm_state.items():
        if ".cond.time." in key:
            mapped[key.replace(".cond.time.", ".cond.end.")] = value
            mapped[key.replace(".cond.time.", ".cond.interval.")] = value
        else:
            mapped[key] = value
    try:
        missing, unexpected = model.load_state_dict(mapped, strict=False)
    except RuntimeError as err:  # same names, other shapes
        raise EmfBenchError(f"the flow-matching probe does not fit this MeanFlow probe "
                            f"({str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise EmfBenchError(f"the flow-matching probe does not fit this MeanFlow probe "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def sync_gradients(model: torch.nn.Module) -> None:
    import torch.distributed as dist

    world = distributed.world_size()
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def broadcast_parameters(model: torch.nn.Module) -> None:
    import torch.distributed as dist

    for p in model.parameters():
        dist.broadcast(p.data, src=0)


def write_log(probe_dir: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(probe_dir) / "train_log.csv", buffer.getvalue())


def read_log(probe_dir: Path) -> list[dict]:
    file = Path(probe_dir) / "train_log.csv"
    if not file.exists():
        return []
    with open(file, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
