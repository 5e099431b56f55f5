"""World-GenEval 2: the world's evaluation prompts of atomicity 3 and more, with questions in
GenEval 2's skills and wording, and an oracle that answers them from exact detections with
probabilities 1 or 0 (so the Soft-TIFA rules apply unchanged and ground truth scores 100).

Atoms, as GenEval 2 counts them: each object, each colour, each count above one, each relation.
Questions, in GenEval 2's order for each object: "How many {plural} are in the image?" (a number
word), "Are there any {plural} in the image?", "Is the {shape} {colour}?" (or "Are the {plural}
{colour}?"); then "Is the {subject} {to the left of | to the right of | above | below} the
{reference}?" for each relation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation.geneval2 import NUMBERS, Item
from emf_bench.spatial import Detection, relative_position
from emf_bench.world.meaning import Meaning, ObjectGroup
from emf_bench.world.palette import COLORS, PLURALS, SINGULARS

PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above",
           "below": "below"}


def atoms(meaning: Meaning) -> int:
    return sum(1 + (g.color is not None) + (g.count > 1) for g in meaning.groups) + \
        len(meaning.relations)


def _noun(group: ObjectGroup, qualified: bool, plural: bool) -> str:
    noun = PLURALS[group.shape] if plural else group.shape
    return f"{group.color} {noun}" if qualified else noun


def questions(meaning: Meaning) -> list[tuple[str, str, str]] | None:
    """(question, answer, skill) in GenEval 2's wording and order; a shape in several groups is
    named with its colour ("How many red circles ..."; no separate colour question then). None
    where a shared shape has a group without colour (no question could single it out)."""
    shapes = [g.shape for g in meaning.groups]
    shared = {s for s in shapes if shapes.count(s) > 1}
    if any(g.shape in shared and g.color is None for g in meaning.groups):
        return None
    out = []
    for g in meaning.groups:
        qualified = g.shape in shared
        plural = _noun(g, qualified, plural=True)
        out.append((f"How many {plural} are in the image?", NUMBERS[g.count], "count"))
        out.append((f"Are there any {plural} in the image?", "Yes", "object"))
        if g.color and not qualified:
            verb = "Is" if g.count == 1 else "Are"
            out.append((f"{verb} the {_noun(g, False, g.count > 1)} {g.color}?", "Yes",
                        "attribute"))
    for rel in meaning.relations:
        a, b = meaning.groups[rel.subject], meaning.groups[rel.reference]
        verb = "Is" if a.count == 1 else "Are"
        out.append((f"{verb} the {_noun(a, a.shape in shared, a.count > 1)} "
                    f"{PHRASES[rel.predicate]} the {_noun(b, b.shape in shared, b.count > 1)}?",
                    "Yes", "position"))
    return out


def world_items(world, min_atoms: int = 3) -> list[Item]:
    """Every world-GenEval and world-DPG prompt of at least `min_atoms` atoms, as GenEval 2
    items (in suite order: GenEval's tasks, then the dense prompts)."""
    from emf_bench.world.grammar import parse

    prompts = [r["prompt"] for r in world.geneval_suite()] + \
        list(world.dense_suite().prompts.values())
    items = []
    for prompt in dict.fromkeys(prompts):
        meaning = parse(prompt)
        qs = questions(meaning)
        if atoms(meaning) < min_atoms or qs is None:
            continue
        items.append(Item(len(items), prompt, atoms(meaning), tuple(q for q, _, _ in qs),
                          tuple(a for _, a, _ in qs), tuple(s for _, _, s in qs)))
    if not items:
        raise EmfBenchError(f"the world has no prompt of {min_atoms} atoms or more; allow more "
                            f"objects or colours")
    return items


_NOUN = "(?:(" + "|".join(COLORS) + ") )?(" + "|".join(list(PLURALS) + list(SINGULARS)) + ")"
_COUNT = re.compile(rf"^how many {_NOUN} are in the image\?$")
_ANY = re.compile(rf"^are there any {_NOUN} in the image\?$")
_COLOR = re.compile(rf"^(?:is|are) the {_NOUN} ({'|'.join(COLORS)})\?$")
_RELATION = re.compile(rf"^(?:is|are) the {_NOUN} ({'|'.join(PHRASES.values())}) the {_NOUN}\?$")


def _of(found: list[Detection], color: str | None, noun: str) -> list[Detection]:
    shape = SINGULARS.get(noun, noun)
    return [d for d in found if d.label == shape and (color is None or d.color == color)]


def _answer(question: str, found: list[Detection]) -> str:
    """The world's answer to a GenEval 2 question about the detections."""
    q = " ".join(question.lower().split())
    if m := _COUNT.match(q):
        n = len(_of(found, m[1], m[2]))
        return NUMBERS[n] if n < len(NUMBERS) else "other"
    if m := _ANY.match(q):
        return "Yes" if _of(found, m[1], m[2]) else "No"
    if m := _COLOR.match(q):
        group = _of(found, m[1], m[2])
        return "Yes" if group and all(d.color == m[3] for d in group) else "No"
    if m := _RELATION.match(q):
        predicate = {v: k for k, v in PHRASES.items()}[m[3]]
        a, b = _of(found, m[1], m[2]), _of(found, m[4], m[5])
        return "Yes" if a and b and all(predicate in relative_position(x.box, y.box)
                                        for x in a for y in b) else "No"
    raise EmfBenchError(f"the world oracle cannot answer {question!r}: not a world-GenEval 2 "
                        f"question")


class WorldOracleVLM:
    """GenEval 2's answerer for the world: probability 1 for the answer the exact detections
    give, 0 for any other. Name `world-oracle`; not GenEval 2's VLM, and labelled so."""

    name = "world-oracle"
    official = False

    def __init__(self, detector, min_score: float = 0.3):
        self.detector, self.min_score = detector, min_score

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "min_score": self.min_score,
                "detector": self.detector.describe()}

    def _found(self, image) -> list[Detection]:
        return [d for d in self.detector.detect(image) if d.score > self.min_score]

    def answer(self, image, questions: Sequence[str], answers: Sequence[str],
               compat: str = "corrected") -> tuple[list[float], list[bool]]:
        found = self._found(image)
        hard = [_answer(q, found).lower() == a.lower()
                for q, a in zip(questions, answers, strict=True)]
        return [float(h) for h in hard], hard

    def vqascore(self, image, prompt: str) -> float:
        """1 when every fact of the prompt holds in the image, else 0."""
        from emf_bench.world.grammar import parse

        qs = questions(parse(prompt)) or []
        return float(all(self.answer(image, [q for q, _, _ in qs],
                                     [a for _, a, _ in qs])[1]))
