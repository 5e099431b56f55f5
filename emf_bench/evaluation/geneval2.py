"""GenEval 2's rules (github facebookresearch/GenEval2, arXiv 2512.16853) as pure functions: the
data file, the accepted answer spellings, a question's soft score from a VLM's next-token
distribution, and Soft-TIFA (AM, GM), TIFA and VQAScore from per-question probabilities.

No model is imported here: a backend hands over token probabilities (or per-question soft
scores) as plain data, so every formula is tested exactly and shared by every backend.

Two ways to turn a next-token distribution into an answer's probability:
- `official`: as the official script does: the first token of every accepted spelling, summed
  once per spelling (a token that starts two spellings counts twice; a tokenizer that splits
  " 4" into a space and "4" adds the space's probability); number words past "ten" become
  "other".
- `corrected` (default): each distinct first token counted once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError

SKILLS = ("object", "count", "attribute", "position", "verb")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
QUESTION_SUFFIX = " Answer in one word."
VQASCORE_QUESTION = 'Does this image show "{prompt}"? Answer the question with Yes or No.'
COMPAT = ("corrected", "official")


@dataclass(frozen=True)
class Item:
    index: int
    prompt: str
    atom_count: int
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    skills: tuple[str, ...]


def read_data(path: Path | str) -> list[Item]:
    """The official `geneval2_data.jsonl` (or one in its schema), every line checked."""
    from emf_bench.inputs import existing_file

    path = existing_file(path, "GenEval 2 data file")
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise EmfBenchError(f"cannot read GenEval 2 data file {path}: {err}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise EmfBenchError(f"{where}: not JSON ({err.msg})") from None
        for key in ("prompt", "atom_count", "vqa_list", "skills"):
            if not isinstance(row, dict) or key not in row:
                raise EmfBenchError(f"{where}: no {key!r} field")
        pairs, skills = row["vqa_list"], row["skills"]
        if not isinstance(pairs, list) or not isinstance(skills, list) or \
                len(pairs) != len(skills):
            raise EmfBenchError(f"{where}: vqa_list and skills must be lists of one length, "
                                f"got {len(pairs) if isinstance(pairs, list) else pairs!r} "
                                f"and {len(skills) if isinstance(skills, list) else skills!r}")
        if not pairs or any(not isinstance(p, list) or len(p) != 2 or
                            not all(isinstance(x, str) for x in p) for p in pairs):
            raise EmfBenchError(f"{where}: vqa_list must hold [question, answer] pairs of text")
        for skill in skills:
            if skill not in SKILLS:
                raise EmfBenchError(f"{where}: unknown skill {skill!r} (known: "
                                    f"{', '.join(SKILLS)})")
        if not isinstance(row["atom_count"], int) or isinstance(row["atom_count"], bool):
            raise EmfBenchError(f"{where}: atom_count must be a whole number")
        items.append(Item(len(items), str(row["prompt"]), row["atom_count"],
                          tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                          tuple(skills)))
    if not items:
        raise EmfBenchError(f"GenEval 2 data file {path} holds no prompts")
    return items


YES_SPELLINGS = ("Yes", "yes", " yes", " Yes")  # the official order


def spellings(question: str, answer: str) -> list[str]:
    """The accepted spellings of an answer, in the official order: "Yes" in four forms, or a
    number word in lower and capitalised form with and without a leading space and its digit
    with and without one ("other" past ten)."""
    if question.startswith("How many"):
        word = answer.strip().lower()
        if word not in NUMBERS:
            word = "other"
        forms = [word, word.capitalize()]
        out = [f for w in forms for f in (w, " " + w)]
        if word != "other":
            digit = str(NUMBERS.index(word))
            out += [digit, " " + digit]
        return out
    return list(YES_SPELLINGS)


def answer_probability(probs: Mapping[int, float] | Sequence[float],
                       first_token: Callable[[str], int], accepted: Sequence[str],
                       compat: str = "corrected") -> float:
    """The probability a next-token distribution gives an answer: the first token of each
    accepted spelling, summed once per spelling (`official`) or once per distinct token."""
    if compat not in COMPAT:
        from emf_bench.errors import unknown_name

        raise unknown_name("GenEval 2 compat mode", compat, COMPAT)
    tokens = [first_token(s) for s in accepted]
    if compat == "corrected":
        tokens = list(dict.fromkeys(tokens))
    return float(sum(probs[t] for t in tokens))


def is_accepted(argmax_token: int, first_token: Callable[[str], int],
                accepted: Sequence[str]) -> bool:
    """TIFA's hard answer: the most likely next token starts an accepted spelling."""
    return argmax_token in {first_token(s) for s in accepted}


def soft_tifa(scores: Sequence[float]) -> tuple[float, float]:
    """(AM, GM) of one prompt's per-question soft scores."""
    if not scores:
        raise EmfBenchError("a GenEval 2 prompt without questions has no Soft-TIFA score")
    am = sum(scores) / len(scores)
    gm = 0.0 if min(scores) <= 0 else math.exp(sum(math.log(s) for s in scores) / len(scores))
    return am, gm


def summarize(items: Sequence[Item], soft: Mapping[int, Sequence[float]],
              hard: Mapping[int, Sequence[bool]] | None = None,
              vqascore: Mapping[int, float] | None = None) -> dict[str, Any]:
    """The benchmark's scores (x 100) from per-question soft scores (and hard answers, and
    VQAScore probabilities) of the prompts in `soft`, keyed by item index: Soft-TIFA AM and GM,
    TIFA, VQAScore, per skill (mean soft score of its questions) and per atomicity (mean GM of
    its prompts). A prompt missing from `soft` is counted and named, never silently dropped."""
    scored = [it for it in items if it.index in soft]
    if not scored:
        raise EmfBenchError("no GenEval 2 prompt was scored")
    am, gm, by_skill, by_atoms = [], [], {}, {}
    for it in scored:
        values = list(soft[it.index])
        if len(values) != len(it.questions):
            raise EmfBenchError(f"GenEval 2 prompt {it.index}: {len(values)} scores for "
                                f"{len(it.questions)} questions")
        a, g = soft_tifa(values)
        am.append(a)
        gm.append(g)
        by_atoms.setdefault(it.atom_count, []).append(g)
        for skill, value in zip(it.skills, values, strict=True):
            by_skill.setdefault(skill, []).append(value)
    out: dict[str, Any] = {
        "soft_tifa_am": 100 * sum(am) / len(am), "soft_tifa_gm": 100 * sum(gm) / len(gm),
        "skills": {s: 100 * sum(v) / len(v) for s, v in sorted(by_skill.items(),
                                                             key=lambda kv: SKILLS.index(kv[0]))},
        "atomicity": {str(k): 100 * sum(v) / len(v) for k, v in sorted(by_atoms.items())},
        "prompts": len(scored), "of": len(items),
        "missing": [it.index for it in items if it.index not in soft][:20],
    }
    if hard is not None:
        tifa = [sum(hard[it.index]) / len(hard[it.index]) for it in scored]
        out["tifa"] = 100 * sum(tifa) / len(tifa)
    if vqascore is not None:
        out["vqascore"] = 100 * sum(vqascore[it.index] for it in scored) / len(scored)
    return out
