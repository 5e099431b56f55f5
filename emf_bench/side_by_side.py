"""A study's probes side by side: trained, then evaluated, in worker processes.

On a CPU the study's small probes use their threads poorly: on a 2-core AVX512-BF16 machine a
MeanFlow step of the cpu-layout U-Net took 0.24 s on two threads and 0.32 s on one, so two
probes side by side on one thread each train 1.5x more images per second than one after another
on two (bench/side_by_side.py, BENCHMARKS.md). `--jobs` defaults to that on a CPU: one probe per
physical core (at most one per probe), one intra-op thread each, so a probe's numbers depend on
the kind of CPU and not on how many cores it has. `--threads` is each probe's thread count (side
by side, as many probes as the cores hold); `--jobs` alone shares the cores out. A GPU runs one
probe at a time unless told (`--jobs 3` keeps an H200 busier).

The trainings go to the pool first and each probe's evaluation joins the queue when its
training ends, so a core that runs out of trainings evaluates while the others still train (on
2 cores the five probes' evaluations fill the time the last training would leave one core
idle). The workers are quiet; their progress bars come to the parent through a queue and show
as one board (progress.ProbeBoard). A worker's error stops the study with that error; so do an
interrupt and a killed worker, and the other workers are ended (their last checkpoints stay; a
re-run resumes).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError

DOING = {"train": "training", "evaluate": "evaluating"}  # a worker's task, in a sentence


def auto_jobs(jobs: int | None, probes: int, device: str, threads: int | None) -> int:
    """How many probes train at once: `jobs` if given; else one per physical core on a CPU
    (one per `threads` cores where each probe's thread count is given) and one on any other
    device."""
    if probes < 1:
        return 1
    if jobs is not None:
        return max(1, min(jobs, probes))
    from emf_bench.probe.precision import physical_cores
    from emf_bench.text.base import resolve_device

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(probes, physical_cores() // (threads or 1)))


def worker_threads(jobs: int | None, probes: int, threads: int | None) -> int:
    """Intra-op threads of one worker: `threads` if given (a probe's threads, side by side or
    not); one where the study chose the jobs itself (a probe's numbers then do not depend on
    how many cores the machine has); else its share of the cores under `--jobs`."""
    from emf_bench.probe.precision import physical_cores

    if threads is not None:
        return threads
    if jobs is None:
        return 1
    return max(1, physical_cores() // max(1, min(jobs, probes)))


def makespan(trainings: Sequence[float], evaluation: float, slots: int) -> float:
    """Seconds until the last probe is evaluated when `slots` workers take the trainings in
    order and each probe's evaluation joins the queue when its training ends (what
    `run_side_by_side` does with its process pool)."""
    pending: deque[tuple[str, float]] = deque(("train", s) for s in trainings)
    running: list[tuple[float, int, str]] = []
    now, idle, started = 0.0, max(1, slots), 0
    while pending or running:
        while pending and idle:
            kind, seconds = pending.popleft()
            heapq.heappush(running, (now + seconds, started, kind))
            started, idle = started + 1, idle - 1
        now, _, kind = heapq.heappop(running)
        idle += 1
        if kind == "train":
            pending.append(("evaluate", evaluation))
    return now


def run_side_by_side(fields: dict[str, Any], probes: list[tuple[str, str]], jobs: int,
                     threads: int, estimates: Sequence[tuple[float, float]]) -> list[Path]:
    """Train and evaluate `probes` `jobs` at a time (spawned processes: CUDA needs spawn), each
    worker on `threads` intra-op threads; their folders in `probes` order. The trainings go to
    the pool first and a probe's evaluation joins the queue when its training ends, so the
    workers that run out of trainings evaluate while the last ones train. `fields` build the
    workers' Study; `estimates`: each probe's estimated (training, evaluation) seconds."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from emf_bench.progress import ProbeBoard, stage

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    pool = ProcessPoolExecutor(jobs, context, _worker_setup, (threads, queue))
    finished = False
    try:
        with ProbeBoard([_name(p) for p in probes], estimates) as board:
            work = {pool.submit(_train_in_worker, fields, *probe): ("train", probe)
                    for probe in probes}
            folders: dict[tuple[str, str], Path] = {}
            while work:
                done, _ = wait(set(work), timeout=0.5, return_when=FIRST_COMPLETED)
                board.drain(queue)
                for future in done:
                    kind, probe = work.pop(future)
                    try:
                        result = future.result()  # a worker's error is raised here
                    except BrokenProcessPool:
                        raise EmfBenchError(
                            f"a probe process died while {DOING[kind]} the {probe[1]} probe of "
                            f"{probe[0]} (killed, or out of memory?); finished probes are kept "
                            f"and a re-run resumes the rest") from None
                    if kind == "train":
                        board.update(_name(probe), 1.0, "trained; evaluation queued")
                        work[pool.submit(_evaluate_in_worker, fields, result, _name(probe))
                             ] = ("evaluate", probe)
                        continue
                    folders[probe] = result
                    board.finish(_name(probe))
                    if not board.shown:
                        stage(f"   {_name(probe)} probe trained and evaluated "
                              f"({len(folders)} of {len(probes)})")
        finished = True
    finally:
        if not finished:  # an error or an interrupt: end the probes still working
            processes = getattr(pool, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        queue.close()
    return [folders[probe] for probe in probes]


def _name(probe: tuple[str, str]) -> str:
    return f"{probe[0]} {probe[1]}"


def _worker_setup(threads: int, queue) -> None:
    """A side-by-side worker: quiet (its bars go to the parent through `queue`), its share of
    the threads, and Ctrl-C left to the parent, which ends the workers."""
    import os
    import signal

    import torch

    from emf_bench.progress import forward_to

    os.environ["EMF_BENCH_QUIET"] = "1"
    torch.set_num_threads(threads)
    forward_to(queue)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _train_in_worker(fields: dict[str, Any], encoder: str, objective: str) -> Path:
    from emf_bench.progress import forwarding
    from emf_bench.study import Study
    from emf_bench.text.cache import FeatureCache

    study = Study(**fields)
    with forwarding(_name((encoder, objective))):
        return study.train(encoder, objective, FeatureCache(study.cache_dir))


def _evaluate_in_worker(fields: dict[str, Any], folder: Path, name: str) -> Path:
    from emf_bench.progress import forwarded
    from emf_bench.study import Study
    from emf_bench.text.cache import FeatureCache

    study = Study(**fields)
    forwarded(name, 1.0, f"evaluating at steps {', '.join(map(str, study.profile.steps))}")
    study.evaluate(folder, FeatureCache(study.cache_dir))
    return folder
