"""DPG-Bench-style question sets for the world's dense prompts, and their parser.

Rows follow the DPG-Bench CSV schema. Per prompt: one `entity - whole` question per shape; one
`attribute - color` question per coloured group (depending on its shape's entity question); an
`other - count` question per group of more than one (depending on the group's question); one
`relation - spatial` question per relation (depending on both groups' questions). The oracle
reads the questions back with `parse_question`, so the world's answers need no VQA model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emf_bench.errors import EmfBenchError
from emf_bench.world.grammar import NUMBER_WORDS
from emf_bench.world.meaning import Meaning, ObjectGroup
from emf_bench.world.palette import COLORS, PLURALS, SINGULARS, article

QUESTION_COLUMNS = (
    "item_id", "text", "keywords", "proposition_id", "dependency", "category_broad",
    "category_detailed", "tuple", "question_natural_language",
)
_COUNT_WORDS = {n: w for w, n in NUMBER_WORDS.items() if n > 1}


def _noun(group: ObjectGroup, plural: bool = False) -> str:
    noun = PLURALS[group.shape] if plural else group.shape
    return f"{group.color} {noun}" if group.color else noun


def question_rows(item_id: str, prompt: str, meaning: Meaning) -> list[dict[str, str]]:
    """DPG-Bench CSV rows (all values strings) asking about every fact of `meaning`."""
    keywords = ", ".join(dict.fromkeys(
        w for g in meaning.groups for w in (g.color, g.shape) if w is not None))
    rows: list[dict[str, str]] = []

    def add(category: str, tuple_text: str, question: str, depends: list[int]) -> int:
        broad, detailed = (part.strip() for part in category.split("-", 1))
        rows.append({
            "item_id": item_id, "text": prompt, "keywords": keywords,
            "proposition_id": str(len(rows) + 1),
            "dependency": ",".join(str(d) for d in depends) if depends else "0",
            "category_broad": broad, "category_detailed": detailed,
            "tuple": f"{category} ({tuple_text})", "question_natural_language": question,
        })
        return len(rows)

    entity = {}
    for g in meaning.groups:
        if g.shape not in entity:
            entity[g.shape] = add("entity - whole", g.shape,
                                  f"Is there {article(g.shape)} {g.shape}?", [])
    group_question = {}
    for i, g in enumerate(meaning.groups):
        group_question[i] = entity[g.shape]
        if g.color:
            group_question[i] = add("attribute - color", f"{g.shape}, {g.color}",
                                    f"Is there {article(g.color)} {_noun(g)}?", [entity[g.shape]])
        if g.count > 1:
            group_question[i] = add("other - count", f"{_noun(g, plural=True)}, =={g.count}",
                                    f"Are there exactly {_COUNT_WORDS[g.count]} "
                                    f"{_noun(g, plural=True)}?", [group_question[i]])
    for rel in meaning.relations:
        a, b = meaning.groups[rel.subject], meaning.groups[rel.reference]
        add("relation - spatial", f"{_noun(a)}, {_noun(b)}, {rel.predicate}",
            f"Is the {_noun(a)} {rel.predicate} the {_noun(b)}?",
            [group_question[rel.subject], group_question[rel.reference]])
    return rows


@dataclass(frozen=True)
class Question:
    """A parsed world question: `kind` is exists, count or relation."""

    kind: str
    target: tuple[str, str | None]  # (shape, colour or None)
    count: int | None = None
    relation: str | None = None
    reference: tuple[str, str | None] | None = None


_COLOR = "(?:(" + "|".join(COLORS) + ") )?"
_SHAPE = "(" + "|".join(PLURALS) + ")"
_SHAPES = "(" + "|".join(SINGULARS) + ")"
_EXISTS = re.compile(rf"^is there an? {_COLOR}{_SHAPE}\?$")
_COUNT = re.compile(rf"^are there exactly ({'|'.join(_COUNT_WORDS.values())}) {_COLOR}{_SHAPES}\?$")
_RELATION = re.compile(
    rf"^is the {_COLOR}{_SHAPE} (left of|right of|above|below) the {_COLOR}{_SHAPE}\?$")


def parse_question(text: str) -> Question:
    q = " ".join(text.lower().split())
    if m := _EXISTS.match(q):
        return Question("exists", (m[2], m[1]))
    if m := _COUNT.match(q):
        return Question("count", (SINGULARS[m[3]], m[2]), count=NUMBER_WORDS[m[1]])
    if m := _RELATION.match(q):
        return Question("relation", (m[2], m[1]), relation=m[3], reference=(m[5], m[4]))
    raise EmfBenchError(f"the world oracle cannot answer {text!r}: not a world question")
