"""torch.distributed helpers: one process is the degenerate case of all of them.

Under `torchrun`, work items are sharded by rank (`items[rank::world]`) and results gathered on
rank 0, which writes; other ranks wait at a barrier and read what rank 0 wrote.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (once); True if joined."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":  # NCCL works on the current device: make it this rank's GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def shutdown(wait: bool = True) -> None:
    """Leave the process group before exit (`wait`: after every rank got here). Exiting with a
    live gloo group races its threads against interpreter teardown: under load a rank can die
    in std::terminate after its work is done, and torchrun then fails the whole job."""
    if "torch.distributed" not in sys.modules:  # never joined: do not import torch for it
        return
    dist = _dist()
    if not dist:
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist else 0


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    dist = _dist()
    if dist:
        dist.barrier()


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order); None on the other ranks."""
    dist = _dist()
    if not dist:
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather(obj: Any) -> list[Any]:
    dist = _dist()
    if not dist:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_main(obj: Any) -> Any:
    dist = _dist()
    if not dist:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
