"""The shapes world: its catalogue of meanings, splits, evaluation suites and training set.

The catalogue enumerates every meaning of the six GenEval tasks over the world's shapes and
colours, plus a seeded set of dense (DPG-style) meanings. Each entry has an integer id (the
`class-label` encoder's label). Training examples draw a meaning from the catalogue, a training
phrasing and a random scene; evaluation prompts say the same meanings with held-out phrasings.
The `compositional` split also keeps a seeded fraction of combinations (colour-shape pairs,
relations, dense scenes) out of training, while every shape and colour stays seen.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.spatial import INVERSE_RELATION, RELATIONS
from emf_bench.world.config import WorldConfig
from emf_bench.world.detector import ExactDetector
from emf_bench.world.grammar import GENEVAL_PHRASING, parse, realize, sample_phrasing
from emf_bench.world.meaning import Meaning, ObjectGroup, Relation
from emf_bench.world.oracle import OracleVQA
from emf_bench.world.questions import question_rows
from emf_bench.world.scene import Scene, render, sample_scene

GENEVAL_TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
DENSE_TASK = "dense"
TASKS = (*GENEVAL_TASKS, DENSE_TASK)  # what a training example is drawn from
# Tasks whose meanings are combinations, held out in part by the compositional split.
COMPOSITIONAL_TASKS = ("colors", "position", "color_attr", DENSE_TASK)


@dataclass(frozen=True)
class CatalogueEntry:
    id: int
    meaning: Meaning  # canonical
    task: str
    heldout: bool = False  # compositional split: never shown in training


@dataclass(frozen=True)
class TrainingExample:
    index: int
    caption: str
    meaning_id: int
    task: str
    scene: Scene


@dataclass(frozen=True)
class DenseSuite:
    """World-DPG: prompts by item id and their question rows (DPG-Bench CSV schema)."""

    prompts: dict[str, str]
    questions: list[dict[str, str]]
    meaning_ids: dict[str, int]


def _seed(*parts: int) -> np.random.Generator:
    return np.random.default_rng(list(parts))


class World:
    """A synthetic world built from a `WorldConfig` (defaults: the CPU-sized world)."""

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()

    # --- catalogue -------------------------------------------------------------------------

    @functools.cached_property
    def catalogue(self) -> list[CatalogueEntry]:
        meanings: list[tuple[str, Meaning]] = []
        for task in GENEVAL_TASKS:
            meanings += [(task, m.canonical()) for m in self._task_meanings(task)]
        seen = {m.key for _, m in meanings}
        meanings += [(DENSE_TASK, m) for m in self._dense_meanings(seen)]
        heldout = self._heldout_keys(meanings) if self.config.split == "compositional" else set()
        return [CatalogueEntry(i, m, task, m.key in heldout)
                for i, (task, m) in enumerate(meanings)]

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {e.meaning.key: e.id for e in self.catalogue}

    def _task_meanings(self, task: str) -> Iterator[Meaning]:
        shapes, colors = self.config.shapes, self.config.colors
        pairs = list(itertools.combinations(shapes, 2))
        if task == "single_object":
            yield from (Meaning((ObjectGroup(s),)) for s in shapes)
        elif task == "two_object":
            yield from (Meaning((ObjectGroup(a), ObjectGroup(b))) for a, b in pairs)
        elif task == "counting":
            yield from (Meaning((ObjectGroup(s, None, n),))
                        for s, n in itertools.product(shapes, self.config.counts))
        elif task == "colors":
            yield from (Meaning((ObjectGroup(s, c),)) for s, c in itertools.product(shapes, colors))
        elif task == "position":
            for (a, b), predicate, forward in itertools.product(
                    pairs, ("left of", "above"), (True, False)):
                relation = Relation(0, predicate, 1) if forward else Relation(1, predicate, 0)
                yield Meaning((ObjectGroup(a), ObjectGroup(b)), (relation,))
        elif task == "color_attr":
            for (a, b), (ca, cb) in itertools.product(pairs, itertools.permutations(colors, 2)):
                yield Meaning((ObjectGroup(a, ca), ObjectGroup(b, cb)))

    def _dense_meanings(self, taken: set[str]) -> list[Meaning]:
        cfg = self.config
        rng = _seed(cfg.seed, 1)
        kinds = list(itertools.product(cfg.shapes, cfg.colors))
        out: list[Meaning] = []
        keys = set(taken)
        for _ in range(200 * max(cfg.dense_prompts, 1)):
            if len(out) >= cfg.dense_prompts:
                break
            total = int(rng.integers(cfg.dense_objects[0], cfg.dense_objects[1] + 1))
            n_groups = int(rng.integers(2, min(total, 4, len(kinds)) + 1))
            # Split `total` objects into `n_groups` non-empty groups.
            cuts = np.sort(rng.choice(np.arange(1, total), n_groups - 1, replace=False))
            counts = np.diff(np.concatenate([[0], cuts, [total]]))
            chosen = rng.choice(len(kinds), n_groups, replace=False)
            groups = tuple(ObjectGroup(kinds[k][0], kinds[k][1], int(c))
                           for k, c in zip(chosen, counts, strict=True))
            singles = [i for i, g in enumerate(groups) if g.count == 1]
            relation_pairs = list(itertools.combinations(singles, 2))
            n_rel = int(rng.integers(0, min(2, len(relation_pairs)) + 1))
            picks = rng.choice(len(relation_pairs), n_rel, replace=False) if n_rel else []
            relations = tuple(
                Relation(relation_pairs[p][0], RELATIONS[int(rng.integers(len(RELATIONS)))],
                         relation_pairs[p][1])
                for p in picks)
            meaning = Meaning(groups, relations).canonical()
            if meaning.key in keys:
                continue
            try:
                sample_scene(meaning, cfg, _seed(cfg.seed, 2, len(out)))
            except EmfBenchError:
                continue
            keys.add(meaning.key)
            out.append(meaning)
        if len(out) < cfg.dense_prompts:
            raise EmfBenchError(
                f"this world has room for only {len(out)} distinct dense prompts, "
                f"{cfg.dense_prompts} were asked for; add shapes or colours or ask for fewer")
        return out

    def _heldout_keys(self, meanings: list[tuple[str, Meaning]]) -> set[str]:
        """Seeded held-out combinations per compositional task, keeping every word seen."""
        rng = _seed(self.config.seed, 3)
        heldout: set[str] = set()
        for task in COMPOSITIONAL_TASKS:
            pool = [m for t, m in meanings if t == task]
            target = round(self.config.holdout * len(pool))
            kept = list(pool)
            for i in rng.permutation(len(pool)):
                if target == 0:
                    break
                candidate = pool[int(i)]
                rest = [m for m in kept if m is not candidate]
                if _vocabulary(rest) == _vocabulary(pool):
                    kept = rest
                    heldout.add(candidate.key)
                    target -= 1
        return heldout

    def meaning_id(self, meaning: Meaning) -> int:
        try:
            return self._ids[meaning.key]
        except KeyError:
            raise EmfBenchError(
                f"{meaning.key!r} is not a meaning of this world's catalogue") from None

    def class_label(self, caption: str) -> int:
        """The catalogue id of a world caption (the `class-label` encoder's label)."""
        return self.meaning_id(parse(caption))

    def entries(self, task: str | None = None, training: bool | None = None
                ) -> list[CatalogueEntry]:
        return [e for e in self.catalogue
                if (task is None or e.task == task)
                and (training is None or training != e.heldout)]

    # --- scenes and images -----------------------------------------------------------------

    def sample_scene(self, meaning: Meaning, rng: np.random.Generator) -> Scene:
        return sample_scene(meaning, self.config, rng)

    def render(self, scene: Scene, size: int | None = None) -> np.ndarray:
        return render(scene, size or self.config.canvas)

    def detector(self) -> ExactDetector:
        return ExactDetector(self.config)

    def oracle(self) -> OracleVQA:
        return OracleVQA(self.detector())

    # --- evaluation suites -----------------------------------------------------------------

    def geneval_suite(self) -> list[dict[str, Any]]:
        """World-GenEval prompts in GenEval's metadata schema, said in GenEval's own phrasing.

        Multi-object meanings appear in both orders (and position in both directions), like
        GenEval's prompts. At most `max_prompts_per_task` prompts per task (seeded choice). In
        the compositional split each row carries `heldout`: whether its meaning was unseen.
        """
        rows = []
        for task in GENEVAL_TASKS:
            task_rows = []
            for entry in self.entries(task):
                for ordered in _orderings(entry.meaning):
                    row = {"tag": task, **_geneval_clauses(task, ordered),
                           "prompt": realize(ordered, GENEVAL_PHRASING)}
                    if self.config.split == "compositional":
                        row["heldout"] = entry.heldout
                    task_rows.append(row)
            cap = self.config.max_prompts_per_task
            if len(task_rows) > cap:
                keep = np.sort(_seed(self.config.seed, 4, GENEVAL_TASKS.index(task))
                               .choice(len(task_rows), cap, replace=False))
                task_rows = [task_rows[i] for i in keep]
            rows += task_rows
        return rows

    def dense_suite(self) -> DenseSuite:
        """World-DPG: each dense meaning in a random held-out phrasing, with its questions."""
        prompts, questions, ids = {}, [], {}
        for k, entry in enumerate(self.entries(DENSE_TASK)):
            item_id = f"shapes{k}"
            phrasing = sample_phrasing(_seed(self.config.seed, 5, k), "eval",
                                       len(entry.meaning.groups))
            prompt = realize(entry.meaning, phrasing)
            prompts[item_id] = prompt
            ids[item_id] = entry.id
            questions += question_rows(item_id, prompt, entry.meaning)
        return DenseSuite(prompts, questions, ids)

    # --- training data ---------------------------------------------------------------------

    def training_set(self, size: int, seed: int = 0,
                     tasks: Sequence[str] | None = None) -> TrainingSet:
        return TrainingSet(self, size, seed, tasks)


class TrainingSet:
    """`size` training examples, each fixed by (seed, index): random access, reproducible.

    Tasks are drawn uniformly (GenEval's six and dense, or only `tasks`), then a training
    meaning of the task, a training phrasing and a random scene.
    """

    def __init__(self, world: World, size: int, seed: int = 0,
                 tasks: Sequence[str] | None = None):
        if size < 1:
            raise EmfBenchError(f"a training set needs at least one example, got {size}")
        self.world, self.size, self.seed = world, size, seed
        by_task: dict[str, list[CatalogueEntry]] = {}
        for entry in world.entries(training=True):
            if tasks is None or entry.task in tasks:
                by_task.setdefault(entry.task, []).append(entry)
        for task in tasks or ():
            if task not in by_task:
                raise unknown_name("training task", task, TASKS)
        self._tasks = sorted(by_task, key=TASKS.index)
        self._by_task = by_task

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> TrainingExample:
        if not 0 <= index < self.size:
            raise IndexError(index)
        rng = _seed(self.seed, 6, index)
        task = self._tasks[int(rng.integers(len(self._tasks)))]
        options = self._by_task[task]
        entry = options[int(rng.integers(len(options)))]
        phrasing = sample_phrasing(rng, "train", len(entry.meaning.groups))
        caption = realize(entry.meaning, phrasing)
        return TrainingExample(index, caption, entry.id, task,
                               self.world.sample_scene(entry.meaning, rng))

    def __iter__(self) -> Iterator[TrainingExample]:
        return (self[i] for i in range(self.size))

    def image(self, index: int, size: int | None = None) -> np.ndarray:
        return self.world.render(self[index].scene, size)

    @functools.cached_property
    def captions(self) -> list[str]:
        return [example.caption for example in self]


def _vocabulary(meanings: list[Meaning]) -> set[tuple[str, str]]:
    words = set()
    for m in meanings:
        for g in m.groups:
            words.add(("shape", g.shape))
            if g.color:
                words.add(("color", g.color))
        for r in m.relations:
            words.add(("relation", r.predicate))
    return words


def _orderings(meaning: Meaning) -> list[Meaning]:
    """The meaning in each order a GenEval prompt may state it (both directions of a relation)."""
    if meaning.relations:
        (rel,) = meaning.relations  # position meanings carry exactly one relation
        a, b = meaning.groups[rel.subject], meaning.groups[rel.reference]
        return [Meaning((a, b), (Relation(0, rel.predicate, 1),)),
                Meaning((b, a), (Relation(0, INVERSE_RELATION[rel.predicate], 1),))]
    if len(meaning.groups) == 2:
        return [meaning, Meaning(meaning.groups[::-1])]
    return [meaning]


def _geneval_clauses(task: str, meaning: Meaning) -> dict[str, Any]:
    """GenEval's include/exclude clauses for a meaning stated in prompt order."""
    def clause(group: ObjectGroup) -> dict[str, Any]:
        out: dict[str, Any] = {"class": group.shape, "count": group.count}
        if group.color:
            out["color"] = group.color
        return out

    if task == "position":
        subject, reference = meaning.groups
        # GenEval lists the reference object first and points the subject's position at it.
        return {"include": [clause(reference),
                            {**clause(subject), "position": [meaning.relations[0].predicate, 0]}]}
    out: dict[str, Any] = {"include": [clause(g) for g in meaning.groups]}
    if task == "counting":
        (group,) = meaning.groups
        out["exclude"] = [{"class": group.shape, "count": group.count + 1}]
    return out
