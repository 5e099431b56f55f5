"""Captions of the shapes world: phrasings of meanings, and the parser back to meanings.

A caption is a frame around a body. The body lists the object groups ("a red circle and two
blue squares"), or states one relation inline ("a circle left of a square"), optionally followed
by relation sentences ("The red circle is to the left of the blue square."). A `Phrasing` fixes
every wording choice: frame, where the colour goes, determiners, list joiners, relation synonyms,
relation direction, group order. Frames are split: training captions use only training frames,
evaluation prompts only held-out ones (GenEval's own "a photo of ..." among them), so an
evaluation prompt never appears among training captions and scores measure whether an encoder
maps a new wording to the meaning it has learned.

`parse` is a small recursive-descent parser over the same grammar: every caption `realize` can
produce parses back to its meaning (tests check this over every phrasing option).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from emf_bench.errors import EmfBenchError
from emf_bench.spatial import INVERSE_RELATION
from emf_bench.world.meaning import Meaning, ObjectGroup, Relation
from emf_bench.world.palette import COLORS, PLURALS, SINGULARS, article

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Frame:
    name: str
    prefix: str
    suffix: str
    split: str


FRAMES: tuple[Frame, ...] = (
    Frame("bare", "", "", "train"),
    Frame("image-of", "an image of ", "", "train"),
    Frame("picture-showing", "a picture showing ", "", "train"),
    Frame("drawing-of", "a drawing of ", "", "train"),
    Frame("rendering-of", "a rendering of ", "", "train"),
    Frame("there-is", "there is ", "", "train"),  # "there are" before a plural
    Frame("on-gray", "", " on a gray background", "train"),
    Frame("photo-of", "a photo of ", "", "eval"),  # GenEval's wording
    Frame("photo-shows", "this photo shows ", "", "eval"),
)
FRAME_BY_NAME = {f.name: f for f in FRAMES}

COLOR_STYLES = ("pre", "that-is", "in", "colored")  # red circle / circle that is red / ...
JOINERS = ("and", "with", "as well as", "plus", "together with")
RELATION_VERBS = ("is", "sits", "appears")
# Synonyms per relation; index 0 is GenEval's word.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left side of"),
    "right of": ("right of", "to the right of", "on the right side of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath"),
}
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9}
_COUNT_WORD = {n: w for w, n in NUMBER_WORDS.items() if w not in ("a", "an")}


@dataclass(frozen=True)
class Phrasing:
    """Every wording choice of one caption; the defaults are GenEval's phrasing."""

    frame: str = "photo-of"
    color_style: str = "pre"
    one_word: bool = False  # "one circle" rather than "a circle"
    joiner: str = "and"
    serial_comma: bool = False
    relation_words: int = 0  # index into RELATION_WORDS synonyms
    invert_relations: bool = False  # say "B right of A" for "A left of B"
    relation_verb: str = "is"
    order: tuple[int, ...] | None = None  # order of groups in the object list

    @property
    def split(self) -> str:
        return FRAME_BY_NAME[self.frame].split


GENEVAL_PHRASING = Phrasing()


def frames(split: str) -> list[str]:
    return [f.name for f in FRAMES if f.split == split]


def sample_phrasing(rng: np.random.Generator, split: str, n_groups: int) -> Phrasing:
    """A uniformly random phrasing of `split` (group order included)."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return Phrasing(
        frame=pick(frames(split)),
        color_style=pick(COLOR_STYLES),
        one_word=bool(rng.integers(2)),
        joiner=pick(JOINERS),
        serial_comma=bool(rng.integers(2)),
        relation_words=int(rng.integers(3)),
        invert_relations=bool(rng.integers(2)),
        relation_verb=pick(RELATION_VERBS),
        order=tuple(int(i) for i in rng.permutation(n_groups)),
    )


def all_phrasings(split: str, n_groups: int) -> Iterator[Phrasing]:
    """Every phrasing of `split` for a meaning with `n_groups` groups (for exhaustive tests)."""
    for frame, style, one, joiner, comma, words, invert, verb, order in itertools.product(
        frames(split), COLOR_STYLES, (False, True), JOINERS, (False, True), range(3),
        (False, True), RELATION_VERBS, itertools.permutations(range(n_groups)),
    ):
        yield Phrasing(frame, style, one, joiner, comma, words, invert, verb, order)


# --- realisation -----------------------------------------------------------------------------


def noun_phrase(group: ObjectGroup, phrasing: Phrasing) -> str:
    noun = group.shape if group.count == 1 else PLURALS[group.shape]
    color, style = group.color, phrasing.color_style
    if color is None:
        head, tail = noun, ""
    elif style == "pre":
        head, tail = f"{color} {noun}", ""
    elif style == "colored":
        head, tail = f"{color}-colored {noun}", ""
    elif style == "that-is":
        head, tail = noun, f" that {'is' if group.count == 1 else 'are'} {color}"
    else:  # "in"
        head, tail = noun, f" in {color}"
    if group.count == 1:
        det = "one" if phrasing.one_word else article(head)
    else:
        det = _COUNT_WORD[group.count]
    return f"{det} {head}{tail}"


def _definite(group: ObjectGroup) -> str:
    return f"the {group.color} {group.shape}" if group.color else f"the {group.shape}"


def _relation_words(relation: Relation, phrasing: Phrasing) -> tuple[int, str, int]:
    subject, predicate, reference = relation.subject, relation.predicate, relation.reference
    if phrasing.invert_relations:
        subject, predicate, reference = reference, INVERSE_RELATION[predicate], subject
    return subject, RELATION_WORDS[predicate][phrasing.relation_words], reference


def realize(meaning: Meaning, phrasing: Phrasing = GENEVAL_PHRASING) -> str:
    """The caption saying `meaning` in `phrasing`."""
    groups = meaning.groups
    frame = FRAME_BY_NAME[phrasing.frame]
    inline = (len(groups) == 2 and len(meaning.relations) == 1
              and all(g.count == 1 for g in groups))
    if inline:
        subject, words, reference = _relation_words(meaning.relations[0], phrasing)
        first = groups[subject]
        body = (f"{noun_phrase(groups[subject], phrasing)} {words} "
                f"{noun_phrase(groups[reference], phrasing)}")
        sentences: list[str] = []
    else:
        order = phrasing.order if phrasing.order is not None else range(len(groups))
        nps = [noun_phrase(groups[i], phrasing) for i in order]
        first = groups[next(iter(order))]
        if len(nps) == 1:
            body = nps[0]
        elif len(nps) == 2:
            body = f"{nps[0]} {phrasing.joiner} {nps[1]}"
        else:
            body = ", ".join(nps[:-1]) + ("," if phrasing.serial_comma else "") + f" and {nps[-1]}"
        sentences = []
        for rel in meaning.relations:
            subject, words, reference = _relation_words(rel, phrasing)
            sentences.append(f"{_definite(groups[subject])} {phrasing.relation_verb} {words} "
                             f"{_definite(groups[reference])}")
    prefix = frame.prefix
    if frame.name == "there-is" and first.count > 1:
        prefix = "there are "
    head = f"{prefix}{body}{frame.suffix}"
    if not sentences:
        return head
    return " ".join(_sentence(s) for s in [head, *sentences])


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


# --- parsing ---------------------------------------------------------------------------------


class CaptionParseError(EmfBenchError):
    """A caption the world's grammar does not produce."""


_RELATION_PHRASES = sorted(
    ((tuple(words.split()), relation) for relation, options in RELATION_WORDS.items()
     for words in options),
    key=lambda item: -len(item[0]),
)
_JOINER_PHRASES = sorted((tuple(j.split()) for j in JOINERS), key=len, reverse=True)
_FRAMES_BY_PREFIX = sorted(FRAMES, key=lambda f: -len(f.prefix + f.suffix))


def _tokens(text: str) -> list[str]:
    return text.replace(",", " , ").split()


def _match(tokens: Sequence[str], i: int, phrase: Sequence[str]) -> bool:
    return tuple(tokens[i:i + len(phrase)]) == tuple(phrase)


def _parse_np(tokens: Sequence[str], i: int) -> tuple[ObjectGroup, int] | None:
    if i >= len(tokens) or tokens[i] not in NUMBER_WORDS:
        return None
    count, i = NUMBER_WORDS[tokens[i]], i + 1
    color = None
    if i < len(tokens) and tokens[i] in COLORS:
        color, i = tokens[i], i + 1
    elif i < len(tokens) and tokens[i].endswith("-colored") and tokens[i][:-8] in COLORS:
        color, i = tokens[i][:-8], i + 1
    if i >= len(tokens):
        return None
    noun = tokens[i]
    if count == 1 and noun in PLURALS:
        shape = noun
    elif count > 1 and noun in SINGULARS:
        shape = SINGULARS[noun]
    else:
        return None
    i += 1
    if color is None:
        verb = "is" if count == 1 else "are"
        if _match(tokens, i, ("that", verb)) and i + 2 < len(tokens) and tokens[i + 2] in COLORS:
            color, i = tokens[i + 2], i + 3
        elif _match(tokens, i, ("in",)) and i + 1 < len(tokens) and tokens[i + 1] in COLORS:
            color, i = tokens[i + 1], i + 2
    return ObjectGroup(shape, color, count), i


def _parse_relation_words(tokens: Sequence[str], i: int) -> tuple[str, int] | None:
    for phrase, relation in _RELATION_PHRASES:
        if _match(tokens, i, phrase):
            return relation, i + len(phrase)
    return None


def _parse_inline_relation(tokens: Sequence[str]) -> Meaning | None:
    first = _parse_np(tokens, 0)
    if first is None:
        return None
    rel = _parse_relation_words(tokens, first[1])
    if rel is None:
        return None
    second = _parse_np(tokens, rel[1])
    if second is None or second[1] != len(tokens):
        return None
    return Meaning((first[0], second[0]), (Relation(0, rel[0], 1),))


def _parse_list(tokens: Sequence[str]) -> list[ObjectGroup] | None:
    groups: list[ObjectGroup] = []
    i = 0
    while True:
        parsed = _parse_np(tokens, i)
        if parsed is None:
            return None
        groups.append(parsed[0])
        i = parsed[1]
        if i == len(tokens):
            return groups
        if tokens[i] == ",":
            i += 1
            if i < len(tokens) and tokens[i] == "and":
                i += 1
            continue
        for phrase in _JOINER_PHRASES:
            if _match(tokens, i, phrase):
                i += len(phrase)
                break
        else:
            return None


def _parse_relation_sentence(tokens: Sequence[str], groups: Sequence[ObjectGroup]) -> Relation:
    def definite(i: int) -> tuple[int, int] | None:
        if i >= len(tokens) or tokens[i] != "the":
            return None
        i += 1
        color = None
        if i < len(tokens) and tokens[i] in COLORS:
            color, i = tokens[i], i + 1
        if i >= len(tokens) or tokens[i] not in PLURALS:
            return None
        matches = [k for k, g in enumerate(groups) if g.shape == tokens[i] and g.color == color]
        return (matches[0], i + 1) if len(matches) == 1 else None

    subject = definite(0)
    if subject is None or subject[1] >= len(tokens) or tokens[subject[1]] not in RELATION_VERBS:
        raise ValueError
    rel = _parse_relation_words(tokens, subject[1] + 1)
    if rel is None:
        raise ValueError
    reference = definite(rel[1])
    if reference is None or reference[1] != len(tokens):
        raise ValueError
    return Relation(subject[0], rel[0], reference[0])


def _strip_frame(text: str) -> Iterator[tuple[Frame, str]]:
    for frame in _FRAMES_BY_PREFIX:
        prefixes = ["there is ", "there are "] if frame.name == "there-is" else [frame.prefix]
        for prefix in prefixes:
            if text.startswith(prefix) and text.endswith(frame.suffix):
                yield frame, text[len(prefix):len(text) - len(frame.suffix)]


def all_parses(caption: str) -> Iterator[tuple[Meaning, Frame]]:
    """Every (canonical meaning, frame) reading of `caption` under the grammar.

    A caption of the world has exactly one; tests use this to prove that no evaluation prompt
    can also be read as a training caption.
    """
    text = " ".join(caption.lower().split()).rstrip(".")
    head, *rest = re.split(r"\.\s+", text)
    for frame, body in _strip_frame(head):
        tokens = _tokens(body)
        meaning = _parse_inline_relation(tokens)
        if meaning is None:
            groups = _parse_list(tokens)
            if groups is None:
                continue
            meaning = Meaning(tuple(groups))
        try:
            relations = [_parse_relation_sentence(_tokens(s), meaning.groups) for s in rest]
        except ValueError:
            continue
        meaning = Meaning(meaning.groups, meaning.relations + tuple(relations))
        try:
            meaning.validate()
        except ValueError:
            continue
        yield meaning.canonical(), frame


def parse_with_frame(caption: str) -> tuple[Meaning, Frame]:
    """The canonical meaning of a world caption and the frame it was said in."""
    for reading in all_parses(caption):
        return reading
    raise CaptionParseError(f"not a caption of the shapes world: {caption!r}")


def parse(caption: str) -> Meaning:
    """The canonical meaning of a caption of the shapes world (CaptionParseError otherwise)."""
    return parse_with_frame(caption)[0]


__all__ = [
    "FRAMES", "GENEVAL_PHRASING", "CaptionParseError", "Phrasing", "all_parses", "all_phrasings",
    "parse",
    "parse_with_frame", "realize", "sample_phrasing",
]
