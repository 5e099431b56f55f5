"""How a probe trains on this hardware: precision and threads, decided at run time.

`auto` trains under bf16 autocast where the device does bf16 matrix work natively (CPUs with
AVX512-BF16 or AMX, GPUs that support it) and in float32 elsewhere. On a 2-core AMX CPU bf16
autocast trained the cpu preset 1.72x faster per image than float32 with flow matching and
1.47x with MeanFlow (bench/probe_speed.py, BENCHMARKS.md). Parameters, optimizer state, the
network's output from its last layer on (u = (z - D) / t, du/dt, MeanFlow's target and the
loss) stay in float32 (`AverageVelocity`). Under bf16 the hand-written du/dt is within 3% of
float64's, as close as u itself (tests/probe/test_objectives.py). Probes sample under the same
rule (generators/probe.py).

Measured and not used (BENCHMARKS.md): torch.compile of the U-Net on the CPU (70 s to compile,
no faster in float32, slower under autocast), channels_last (slower under autocast)
and group norm in bf16 (no gain).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from emf_bench.errors import EmfBenchError, unknown_name

if TYPE_CHECKING:  # torch is imported where it is used: TrainConfig's defaults stay light
    import torch

PRECISIONS = ("auto", "float32", "bfloat16")
ALIASES = {"bf16": "bfloat16", "fp32": "float32"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_support(device: torch.device) -> str | None:
    """What gives `device` native bf16 matrix work ("amx_bf16", "avx512_bf16", "cuda"), or
    None. A CPU without those instructions would emulate bf16, slower than float32."""
    if device.type == "cuda":
        import torch

        return "cuda" if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        flags = cpu_flags()
        return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)
    return None


def check_precision(name: str) -> str:
    """The precision's own name ("bf16" is "bfloat16"), or an error naming the choices."""
    if ALIASES.get(name, name) not in PRECISIONS:
        raise unknown_name("precision", name, PRECISIONS)
    return ALIASES.get(name, name)


def resolve_precision(name: str, device: torch.device) -> str:
    """"float32" or "bfloat16" for a requested precision on `device`."""
    requested, name = name, check_precision(name)
    native = bf16_support(device)
    if name == "auto":
        return "bfloat16" if native else "float32"
    if name == "bfloat16" and native is None:
        what = "GPU" if device.type == "cuda" else (
            "CPU (it has neither AVX512-BF16 nor AMX)" if device.type == "cpu" else device.type)
        raise EmfBenchError(f"--precision {requested}: this {what} has no native bf16; use "
                            f"--precision auto (float32 here) or float32")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward passes' precision: bf16 autocast, or nothing for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16)


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return len(allowed)
    return len(cores) or os.cpu_count() or 1


def check_threads(threads: int | None) -> int:
    """Intra-op threads for training: the physical cores by default (fewer where
    OMP_NUM_THREADS says so); more than the cores is refused (oversubscribed threads slow every
    step)."""
    cores = physical_cores()
    if threads is None:  # under torchrun the ranks of one machine share its cores
        share = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        omp = os.environ.get("OMP_NUM_THREADS", "")
        return min(share, int(omp)) if omp.isdigit() and int(omp) > 0 else share
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise EmfBenchError(f"--threads must be a whole number of at least 1, got {threads!r}")
    if threads > cores:
        raise EmfBenchError(f"--threads {threads} is more than this machine's {cores} physical "
                            f"cores; use at most {cores}")
    return threads


def hardware_record(device: torch.device, precision: str, threads: int) -> dict:
    """What `probe.json` records of how the probe trained."""
    import torch

    return {"device": str(device), "precision": precision,
            "bf16_support": bf16_support(device), "threads": threads,
            "torch": torch.__version__}
