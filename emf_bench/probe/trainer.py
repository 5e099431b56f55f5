"""Train a probe: `emf-bench train-probe`.

A `meanflow` probe spends the first `warm_start` share of its budget on flow matching (r = t,
no JVP, 2x cheaper per image) and the rest on MeanFlow, in one network with both time
embeddings; `--init-from` starts instead from a separately trained flow-matching probe, its
single time embedding copied into both (EMF fine-tunes a pretrained flow model the same way).
A `flow-matching` probe is the baseline: one time embedding, r = t throughout.

AdamW with linear warm-up and a cosine decay over the budget, EMA weights for sampling, seeded
batches, times and noise. Checkpoints every `checkpoint_every` steps and at the end; a resumed
run continues the same sequence of batches, so its loss curve continues the old one. Under
torchrun every rank draws the same global batch and trains on its slice; gradients are averaged
explicitly (torch.func.jvp bypasses DDP's hooks), rank 0 writes.
"""

from __future__ import annotations

import copy
import functools
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emf_bench import distributed
from emf_bench.errors import EmfBenchError
from emf_bench.probe.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from emf_bench.probe.config import TrainConfig, parse_budget
from emf_bench.probe.model import build_model
from emf_bench.probe.objectives import Objective, probe_loss
from emf_bench.probe.precision import (
    autocast,
    check_threads,
    hardware_record,
    resolve_precision,
)
from emf_bench.probe.presets import ProbeConfig
from emf_bench.probe.schedules import TimeSchedule, chosen
from emf_bench.probe.training_state import (
    broadcast_parameters,
    ema_update,
    init_from_flow_matching,
    read_log,
    sync_gradients,
    write_log,
)
from emf_bench.storage import atomic_write_json


class ProbeTrainer:
    """One probe's training, checkpoints and log (see the module docstring)."""

    def __init__(self, card, config: TrainConfig, world, probe_dir: Path, cache,
                 device: str | None = "cpu", init_from: Path | None = None,
                 start_over: str = "use --overwrite to start over", threads: int | None = None):
        """`start_over` ends the line that refuses a checkpoint from other settings; `threads`:
        intra-op threads (default: the physical cores)."""
        from emf_bench.probe.data import WorldData
        from emf_bench.text.base import resolve_device
        from emf_bench.text.registry import weights_signature

        self.card, self.config = card, config
        # the world's scenes (a World), or any training data with record() and build()
        self.data = world if hasattr(world, "record") else WorldData(world)
        self.probe_dir = Path(probe_dir)
        self.cache, self.init_from, self.start_over = cache, init_from, start_over
        self.device = resolve_device(device)
        self.precision = resolve_precision(config.precision, self.device)
        self.threads = check_threads(threads)
        self.budget_kind, self.budget = parse_budget(config.budget)
        self.fingerprint = card.fingerprint(weights_signature(card))
        if config.batch_size % distributed.world_size():
            raise EmfBenchError(f"batch size {config.batch_size} does not split over "
                                f"{distributed.world_size()} processes")

    # -- state ------------------------------------------------------------------------------

    def _describe(self, step: int, elapsed: float, images: int, finished: bool) -> dict:
        return {"step": step, "seconds": elapsed, "images": images, "finished": finished,
                "train": self.config.to_dict(), "probe": self.probe_config.to_dict(),
                "encoder": self.card.to_dict(), "encoder_fingerprint": self.fingerprint,
                **self.data.record(),
                "hardware": hardware_record(self.device, self.precision, self.threads)}

    def _check_resumable(self, state: dict) -> None:
        if state.get("encoder_fingerprint") != self.fingerprint:
            name = state.get("encoder", {}).get("name")
            raise EmfBenchError(f"the checkpoint in {self.probe_dir} was trained with another "
                                f"encoder or encoder settings ({name}); {self.start_over}")
        old = TrainConfig.from_dict(state.get("train", {})).comparable()
        new = self.config.comparable()
        if old["size"] != new["size"] and "probe" in state:
            # A preset renamed since (cpu with layout maps is now cpu-layout) that builds the
            # checkpoint's own network is the same setting.
            built = ProbeConfig.from_dict(state["probe"])
            if built == self.config.probe_config(built.cond_dim, built.channels,
                                                 built.image_size, self.space_kind):
                old["size"] = new["size"]
        if old != new:
            changed = sorted(k for k in old if old[k] != new.get(k))
            was = ", ".join(f"{k}={old[k]!r}" for k in changed)
            now = ", ".join(f"{k}={new.get(k)!r}" for k in changed)
            raise EmfBenchError(f"the checkpoint in {self.probe_dir} has other training "
                                f"settings ({', '.join(changed)}): it was trained with {was}, "
                                f"this run asks for {now}; {self.start_over}")
        for key, value in self.data.record().items():
            if _identity(state.get(key)) != _identity(value):
                what = "world" if key == "world" else "training data (images, captions or space)"
                raise EmfBenchError(f"the checkpoint in {self.probe_dir} was trained on another "
                                    f"{what}; {self.start_over}")

    @property
    def space_kind(self) -> str:
        """pixels (the world's, or a user's at a resolution) or latents."""
        return getattr(getattr(self.data, "space", None), "kind", "pixels")

    def progress(self, step: int, elapsed: float) -> float:
        used = step if self.budget_kind == "steps" else elapsed
        return min(used / self.budget, 1.0)

    def phase(self, progress: float) -> tuple[str, float]:
        """(objective name, progress within its phase) at overall progress."""
        c = self.config
        if c.objective == "flow-matching":
            return "flow-matching", progress
        if c.warm_start > 0 and self.init_from is None and progress < c.warm_start:
            return "flow-matching", progress / c.warm_start
        start = c.warm_start if self.init_from is None else 0.0
        return "meanflow", (progress - start) / (1 - start)

    def learning_rate(self, step: int, progress: float) -> float:
        c = self.config
        warm = min(1.0, (step + 1) / max(c.warmup_steps, 1))
        cosine = c.final_lr + (1 - c.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        return c.lr * warm * cosine

    # -- the loop: restore or start, draw a batch, one optimisation step, log and save --------

    def train(self, resume: bool = False, overwrite: bool = False,
              stop_after: int | None = None,
              snapshot: tuple[float, Callable[[int, float, torch.nn.Module], None]] | None = None,
              study_after: float | None = None) -> dict[str, Any]:
        """Train to the budget; returns a summary. `stop_after` (tests) stops early, as a
        killed run would, after that many steps of this call. `snapshot` = (every, fn) calls
        fn(step, training seconds, EMA model) each `every` seconds of training (learning
        curves; the time fn takes is not training time). `study_after`: the estimated seconds
        of a study's work after this probe, counted down in the progress bar."""
        from emf_bench.progress import StepProgress

        c = self.config
        torch.set_num_threads(self.threads)
        existing = has_checkpoint(self.probe_dir)
        checkpoint = self._restore(resume, overwrite, existing)
        if checkpoint is not None and self._finished(checkpoint.state):
            return {**checkpoint.state, "reused": True, "probe_dir": str(self.probe_dir)}
        run = self._start(checkpoint)
        if overwrite and existing and distributed.is_main():
            shutil.rmtree(self.probe_dir / "checkpoints", ignore_errors=True)
            (self.probe_dir / "latest.json").unlink(missing_ok=True)
        last_good, calls = run.step, 0
        window_start, window_images = time.perf_counter(), 0
        next_snapshot = snapshot[0] if snapshot is not None else float("inf")
        with StepProgress(f"training {self.card.name} {c.objective}",
                          self.budget if self.budget_kind == "steps" else None,
                          after=study_after) as bar:
            while self.progress(run.step, run.elapsed) < 1.0:
                tick = time.perf_counter()
                progress = self.progress(run.step, run.elapsed)
                phase, phase_progress = self.phase(progress)
                lr = self.learning_rate(run.step, progress)
                batch = self.draw_batch(run, progress, phase, phase_progress)
                info = self.optimise(run, batch, phase, lr, last_good)
                run.step += 1
                calls += 1
                run.images += c.batch_size
                spent = time.perf_counter() - tick
                if distributed.world_size() > 1:
                    spent = float(distributed.broadcast_from_main(spent))
                run.elapsed += spent
                window_images += c.batch_size
                if run.step % c.log_every == 0 or run.step == 1:
                    now = time.perf_counter()
                    rate = window_images / max(now - window_start, 1e-9)
                    window_start, window_images = now, 0
                    run.log_rows.append({"step": run.step, "seconds": round(run.elapsed, 3),
                                         "phase": phase, "lr": lr, "loss": info["loss"],
                                         "mse": info["mse"], "images_per_s": round(rate, 1)})
                    bar.update(run.step, self.progress(run.step, run.elapsed), info["loss"],
                               rate, phase)
                if run.step % c.checkpoint_every == 0:
                    self._save(run, finished=False)
                    last_good = run.step
                if snapshot is not None and run.elapsed >= next_snapshot:
                    snapshot[1](run.step, run.elapsed, run.ema)
                    next_snapshot += snapshot[0]
                if stop_after is not None and calls >= stop_after:
                    return {"step": run.step, "stopped": True, "probe_dir": str(self.probe_dir)}
        self._save(run, finished=True)
        from emf_bench.rundir import provenance
        from emf_bench.text.registry import weights_signature

        summary = {**self._describe(run.step, run.elapsed, run.images, True),
                   "probe_dir": str(self.probe_dir),
                   "provenance": provenance(seed=c.seed, device=str(self.device),
                                            precision=self.precision,
                                            models={self.card.name: weights_signature(
                                                self.card)})}
        if distributed.is_main():
            atomic_write_json(self.probe_dir / "probe.json", summary)
        return summary

    def _restore(self, resume: bool, overwrite: bool, existing: bool):
        """The checkpoint to continue from (None: start afresh), or an error when one is there
        and neither --resume nor --overwrite says what to do with it."""
        if not existing or overwrite:
            return None
        checkpoint = load_checkpoint(self.probe_dir, training=True)
        self._check_resumable(checkpoint.state)
        if not resume and not self._finished(checkpoint.state):
            raise EmfBenchError(
                f"an unfinished probe is in {self.probe_dir} (step "
                f"{checkpoint.state['step']}); pass --resume to continue it or "
                f"--overwrite to start over")
        return checkpoint

    def _finished(self, state: dict) -> bool:
        return self.progress(state["step"], state["seconds"]) >= 1.0

    def _start(self, checkpoint) -> _Run:
        """The training set, the network (from the checkpoint, a flow-matching probe or the
        seed), its EMA, the optimizer and the batch generator."""
        c = self.config
        dataset = self.data.build(self.card, self.cache, c.train_size, c.seed,
                                  need_tokens=c.conditioning != "pooled", device=str(self.device))
        channels, size = dataset.sample_shape[0], dataset.sample_shape[-1]
        # A resumed probe keeps the network it was built with, should the preset change since.
        self.probe_config = c.probe_config(dataset.conditions.pooled.shape[1], channels, size,
                                           self.space_kind) \
            if checkpoint is None else ProbeConfig.from_dict(checkpoint.state["probe"])
        self.stats = dataset.stats
        first = None
        if c.first_tasks:
            first = torch.tensor([i for i, t in enumerate(dataset.tasks) if t in c.first_tasks],
                                 dtype=torch.long)
            if len(first) == 0:
                raise EmfBenchError(f"the training set holds no scenes of the curriculum's "
                                    f"tasks ({', '.join(c.first_tasks)})")
        torch.manual_seed(c.seed)
        model = build_model(self.probe_config).to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
        run = _Run(dataset, first, model, None, optimizer,
                   torch.Generator().manual_seed(c.seed))
        if checkpoint is not None:
            model.load_state_dict(checkpoint.model)
            optimizer.load_state_dict(checkpoint.training["optimizer"])
            run.generator.set_state(checkpoint.training["rng"]["batches"])
            run.step, run.elapsed = checkpoint.state["step"], checkpoint.state["seconds"]
            run.images = checkpoint.state["images"]
            run.log_rows = [r for r in read_log(self.probe_dir) if int(r["step"]) <= run.step]
        elif self.init_from is not None:
            fm = load_checkpoint(self.init_from)
            if fm.state.get("encoder_fingerprint") != self.fingerprint:
                raise EmfBenchError(f"--init-from {self.init_from} was trained with another "
                                    f"encoder ({fm.state.get('encoder', {}).get('name')})")
            init_from_flow_matching(model, fm.ema)
        if distributed.world_size() > 1:
            broadcast_parameters(model)
        run.ema = copy.deepcopy(model).eval()
        if checkpoint is not None:
            run.ema.load_state_dict(checkpoint.ema)
        for p in run.ema.parameters():
            p.requires_grad_(False)
        return run

    def draw_batch(self, run: _Run, progress: float, phase: str, phase_progress: float
                   ) -> dict[str, Any]:
        """This rank's slice of the step's global batch: images (from the curriculum's tasks
        while it lasts), dropped conditions, (t, r) and noise, drawn in that order from the
        run's generator (a resumed run draws the same batches)."""
        c = self.config
        rank, world = distributed.rank(), distributed.world_size()
        local = slice(rank * c.batch_size // world, (rank + 1) * c.batch_size // world)
        pool = run.first if run.first is not None and progress < c.first_share else None
        index = torch.randint(len(run.dataset) if pool is None else len(pool),
                              (c.batch_size,), generator=run.generator)
        if pool is not None:
            index = pool[index]
        drop = chosen(c.batch_size, c.cond_dropout, run.generator)
        t, r = self.schedules[phase].sample(c.batch_size, phase_progress, run.generator)
        noise = torch.randn((c.batch_size, *run.dataset.images.shape[1:]),
                            generator=run.generator)
        x, cond = run.dataset.batch(index[local])
        cond = {k: None if v is None else v.to(self.device) for k, v in cond.items()}
        dropped = drop[local].to(self.device)
        pooled, tokens = run.model.cond.apply_null(cond["pooled"], cond["tokens"], dropped)
        cond.update(pooled=pooled, tokens=tokens, dropped=dropped)
        return {"x": x.to(self.device), "noise": noise[local].to(self.device),
                "t": t[local].to(self.device), "r": r[local].to(self.device), "cond": cond}

    def optimise(self, run: _Run, batch: dict[str, Any], phase: str, lr: float,
                 last_good: int) -> dict[str, float]:
        """One optimisation step on `batch` (every rank's gradients averaged), then the EMA;
        a non-finite loss on any rank stops the training, naming the last good checkpoint."""
        c = self.config
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.precision):
            loss, info = probe_loss(run.model, batch["x"], batch["noise"], batch["t"],
                                    batch["r"], batch["cond"], self.objectives[phase])
        finite = torch.tensor(float(torch.isfinite(loss)))
        if distributed.world_size() > 1:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not finite:
            raise EmfBenchError(
                f"training diverged: the loss is {float(loss.detach())} at step "
                f"{run.step + 1}; the last good checkpoint (step {last_good}) is kept in "
                f"{self.probe_dir}")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if distributed.world_size() > 1:
            sync_gradients(run.model)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), c.grad_clip)
        run.optimizer.step()
        ema_update(run.ema, run.model, run.step, c.ema_decay)
        return info

    def _save(self, run: _Run, finished: bool) -> None:
        if distributed.is_main():
            save_checkpoint(self.probe_dir, run.model, run.ema, run.optimizer,
                            {"batches": run.generator.get_state()}, run.dataset.stats.tensors(),
                            self._describe(run.step, run.elapsed, run.images, finished))
            write_log(self.probe_dir, run.log_rows)

    @functools.cached_property
    def schedules(self) -> dict[str, TimeSchedule]:
        return {"flow-matching": TimeSchedule.named("flow-matching"),
                "meanflow": TimeSchedule.named(self.config.schedule)}

    @functools.cached_property
    def objectives(self) -> dict[str, Objective]:
        return {"flow-matching": Objective("flow-matching", p=self.config.adaptive_p),
                "meanflow": self.config.meanflow_objective()}


@dataclass
class _Run:
    """What a training run carries from step to step (and a checkpoint restores)."""

    dataset: Any
    first: torch.Tensor | None  # the curriculum's scene indices
    model: torch.nn.Module
    ema: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    elapsed: float = 0.0
    images: int = 0
    log_rows: list[dict] = field(default_factory=list)


def _identity(record: Any) -> Any:
    """A data record without where the data lay: moved or renamed data of the same content
    resume the same probe."""
    if isinstance(record, dict):
        return {k: _identity(v) for k, v in record.items() if k != "location"}
    return record
