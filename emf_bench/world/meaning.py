"""Meanings: what a caption says, independent of how it says it.

A meaning is a set of object groups (shape, optional colour, count) and spatial relations between
groups. Every caption of the world has exactly one canonical meaning; phrasings (grammar.py) are
many-to-one onto meanings. The canonical form makes equal meanings compare equal: groups sorted,
and relations turned into "left of" / "above", since under GenEval's rule "A right of B" holds
exactly when "B left of A" does.
"""

from __future__ import annotations

from dataclasses import dataclass

from emf_bench.spatial import INVERSE_RELATION, RELATIONS

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class ObjectGroup:
    """`count` objects of one shape, all of `color` (None: the caption leaves colour open)."""

    shape: str
    color: str | None = None
    count: int = 1

    def describe(self) -> str:
        from emf_bench.world.palette import PLURALS

        noun = self.shape if self.count == 1 else PLURALS[self.shape]
        words = [_NUMBER_WORDS[self.count]] + ([self.color] if self.color else []) + [noun]
        return " ".join(words)


@dataclass(frozen=True, order=True)
class Relation:
    """groups[subject] `predicate` groups[reference], by GenEval's relative-position rule."""

    subject: int
    predicate: str
    reference: int


@dataclass(frozen=True)
class Meaning:
    groups: tuple[ObjectGroup, ...]
    relations: tuple[Relation, ...] = ()

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)

    def canonical(self) -> Meaning:
        order = sorted(range(len(self.groups)), key=lambda i: _group_sort_key(self.groups[i]))
        new_index = {old: new for new, old in enumerate(order)}
        relations = set()
        for rel in self.relations:
            subject, predicate, reference = rel.subject, rel.predicate, rel.reference
            if predicate in ("right of", "below"):
                subject, predicate, reference = reference, INVERSE_RELATION[predicate], subject
            relations.add(Relation(new_index[subject], predicate, new_index[reference]))
        return Meaning(tuple(self.groups[i] for i in order), tuple(sorted(relations)))

    @property
    def key(self) -> str:
        """A readable canonical string: equal for equal meanings, used as the meaning's id."""
        canon = self.canonical()
        parts = [g.describe() for g in canon.groups]
        parts += [f"[{r.subject}] {r.predicate} [{r.reference}]" for r in canon.relations]
        return "; ".join(parts)

    def validate(self) -> None:
        """Raise ValueError for a meaning no scene can show (checked before placing objects)."""
        if not self.groups:
            raise ValueError("a meaning needs at least one object")
        seen = set()
        for g in self.groups:
            if g.count < 1:
                raise ValueError(f"object count must be at least 1, got {g.count}")
            if (g.shape, g.color) in seen:
                raise ValueError(f"two groups describe the same objects ({g.describe()})")
            seen.add((g.shape, g.color))
        for rel in self.relations:
            if rel.predicate not in RELATIONS:
                raise ValueError(f"unknown relation {rel.predicate!r}")
            if not (0 <= rel.subject < len(self.groups) and 0 <= rel.reference < len(self.groups)):
                raise ValueError(f"relation {rel} refers to a missing group")
            if rel.subject == rel.reference:
                raise ValueError(f"relation {rel} relates a group to itself")
        canon = self.canonical().relations
        for rel in canon:
            if Relation(rel.reference, rel.predicate, rel.subject) in canon:
                raise ValueError("contradictory relations: " + self.key)


def _group_sort_key(group: ObjectGroup) -> tuple:
    return (group.shape, group.color or "", group.count)
