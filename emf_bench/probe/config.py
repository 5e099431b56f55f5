"""A probe's training settings (`TrainConfig`), its budget and curriculum, checked on creation:
what a checkpoint records and what a resumed run must share with it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from emf_bench.errors import EmfBenchError, in_range, unknown_name
from emf_bench.probe.precision import check_precision
from emf_bench.probe.presets import ProbeConfig, check_space, preset

if TYPE_CHECKING:
    from emf_bench.probe.objectives import Objective

# Settings a flow-matching probe never reads.
MEANFLOW_ONLY = ("warm_start", "schedule", "train_guidance", "tangent")


@dataclass(frozen=True)
class TrainConfig:
    objective: str = "meanflow"
    size: str = "cpu"
    # Steps, so the same command trains the same probe anywhere; or a time: "90s", "4m", "1.5h".
    budget: str = "2000steps"
    batch_size: int = 32
    lr: float = 2e-3
    final_lr: float = 0.1  # cosine decay to this share of lr
    warmup_steps: int = 100
    # 0.99 against 0.995, three seeds of 1450 steps: 1 step +0.01, 4 steps -0.01
    # (docs/experiments.md).
    ema_decay: float = 0.99
    warm_start: float = 0.4  # meanflow only: budget share trained with flow matching first
    schedule: str = "emf"
    jvp: str = "auto"  # the U-Net's hand-written JVP (half torch.func's cost), else torch.func
    adaptive_p: float = 0.5  # MeanFlow's paper uses 1.0; 0.5 learned faster in our sweeps
    # Guidance trained into the MeanFlow target (the MeanFlow paper's way; still one network
    # evaluation per step): +0.05 at 1 step in two 4-minute runs (docs/experiments.md). The
    # flow-matching baseline and warm start train without it.
    train_guidance: float = 1.5
    # The JVP's z-tangent: the model's u(z, t, t) (less noise in the target:
    # docs/experiments.md) or the sample's v (the MeanFlow paper; probes saved before this
    # option existed).
    tangent: str = "model"
    cond_dropout: float = 0.1
    conditioning: str = "pooled"
    null: str = "zero"
    prediction: str = "x"
    train_size: int = 20000
    # Curriculum: the first `first_share` of the budget on these world tasks only, then the
    # whole mix. Position prompts teach the relation where the mix alone does not
    # (docs/experiments.md, "A curriculum").
    first_tasks: tuple[str, ...] = ()
    first_share: float = 0.0
    seed: int = 0
    # auto: bf16 autocast where the device does bf16 natively (probe/precision.py), else float32.
    precision: str = "auto"
    checkpoint_every: int = 250
    log_every: int = 10
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        # (torch comes in here, not on import: the CLI reads these defaults for its options)
        from emf_bench.probe.objectives import OBJECTIVES
        from emf_bench.probe.schedules import TimeSchedule

        if self.objective not in OBJECTIVES:
            raise unknown_name("objective", self.objective, OBJECTIVES)
        parse_budget(self.budget)
        in_range("the batch size", self.batch_size, 1)
        in_range("the training-set size", self.train_size, 1)
        in_range("the learning rate", self.lr, 0, 1, low_open=True)
        in_range("final_lr (a share of the learning rate)", self.final_lr, 0, 1)
        in_range("grad_clip", self.grad_clip, 0, low_open=True)
        in_range("the checkpoint interval (steps)", self.checkpoint_every, 1)
        in_range("the log interval (steps)", self.log_every, 1)
        in_range("the warmup (steps)", self.warmup_steps, 0)
        if not 0 <= self.warm_start < 1:
            raise EmfBenchError(f"warm_start must be in [0, 1), got {self.warm_start}")
        if not 1 <= self.train_guidance <= 10:
            raise EmfBenchError(f"trained-in guidance must be from 1 (none) to 10, got "
                                f"{self.train_guidance}")
        if not 0 <= self.ema_decay < 1:
            raise EmfBenchError(f"EMA decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.cond_dropout < 1:
            raise EmfBenchError(f"condition dropout must be in [0, 1), got {self.cond_dropout}")
        object.__setattr__(self, "first_tasks", tuple(self.first_tasks))  # JSON gives lists
        check_curriculum(self.first_tasks, self.first_share)
        self.meanflow_objective()
        TimeSchedule.named(self.schedule)
        check_precision(self.precision)
        if self.jvp == "dual" and not preset(self.size).has_tangent_rules:
            raise EmfBenchError(f"--jvp dual needs hand-written tangent rules, which the "
                                f"{self.size} preset's network has not (the U-Net presets "
                                f"have); use --jvp auto or func")

    def meanflow_objective(self) -> Objective:
        from emf_bench.probe.objectives import Objective

        return Objective("meanflow", self.jvp, self.adaptive_p, guidance=self.train_guidance,
                         tangent=self.tangent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        data = {"tangent": "sample", **data}  # checkpoints from before the option used v
        return cls(**{k: v for k, v in data.items() if k in known})

    def probe_config(self, cond_dim: int, channels: int = 3, image_size: int = 32,
                     space: str = "pixels") -> ProbeConfig:
        """The preset's network for features of `cond_dim` and samples of (channels,
        image_size, image_size) in `space`, which the preset must expect."""
        check_space(self.size, space, channels)
        return preset(self.size, cond_dim=cond_dim, conditioning=self.conditioning,
                      null=self.null, prediction=self.prediction, channels=channels,
                      image_size=image_size,
                      time="interval" if self.objective == "meanflow" else "single")

    def comparable(self) -> dict[str, Any]:
        """Fields a resumed run must share with the checkpoint (budget, saving, and how the
        arithmetic is done: the JVP's strategy and the precision, may differ; a flow-matching
        probe ignores the MeanFlow-only settings)."""
        free = {"budget", "checkpoint_every", "log_every", "jvp", "precision"}
        if self.objective == "flow-matching":
            free |= set(MEANFLOW_ONLY)
        return {k: v for k, v in self.to_dict().items() if k not in free}


def check_curriculum(tasks: tuple[str, ...], share: float) -> None:
    """A curriculum is world tasks and a budget share in (0, 1), or neither."""
    from emf_bench.world.core import TASKS

    for task in tasks:
        if task not in TASKS:
            raise unknown_name("training task", task, TASKS)
    if not 0 <= share < 1 or bool(tasks) != (share > 0):
        raise EmfBenchError(f"a curriculum needs both its tasks and a share in (0, 1) of the "
                            f"budget, got tasks {list(tasks)} and share {share}")


_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)\s*$")
_STEPS = re.compile(r"^\s*(\d+)\s*steps?\s*$")


def parse_budget(budget: str) -> tuple[str, float]:
    """("seconds", s) or ("steps", n) from "90s", "4m", "1.5h" or "3000steps"."""
    if m := _TIME.match(str(budget)):
        unit = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m[2]]
        value, kind = float(m[1]) * unit, "seconds"
    elif m := _STEPS.match(str(budget)):
        value, kind = float(m[1]), "steps"
    else:
        raise EmfBenchError(f"budget {budget!r} does not parse: use e.g. 4m, 90s, 1.5h or "
                            f"3000steps")
    if value <= 0:
        raise EmfBenchError(f"budget {budget!r} must be positive")
    return kind, value
