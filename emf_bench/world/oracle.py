"""The world's oracle question answerer: DPG-style yes/no answers from exact detections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emf_bench.spatial import Detection, relative_position
from emf_bench.world.detector import ExactDetector
from emf_bench.world.questions import parse_question


class OracleVQA:
    """Answers the world's questions ("yes"/"no") from `ExactDetector` detections.

    Name `world-oracle`; not DPG-Bench's VQA model (mPLUG-large), and labelled so.
    """

    name = "world-oracle"
    official = False

    def __init__(self, detector: ExactDetector, min_score: float = 0.3):
        self.detector = detector
        self.min_score = min_score

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "min_score": self.min_score,
                "detector": self.detector.describe()}

    def answer(self, image: Any, questions: Sequence[str]) -> list[str]:
        parsed = [parse_question(q) for q in questions]  # reject bad questions before detecting
        detections = [d for d in self.detector.detect(image) if d.score > self.min_score]
        return ["yes" if _holds(q, detections) else "no" for q in parsed]


def _matching(detections: list[Detection], target: tuple[str, str | None]) -> list[Detection]:
    shape, color = target
    return [d for d in detections if d.label == shape and (color is None or d.color == color)]


def _holds(question, detections: list[Detection]) -> bool:
    found = _matching(detections, question.target)
    if question.kind == "exists":
        return bool(found)
    if question.kind == "count":
        return len(found) == question.count
    references = _matching(detections, question.reference)
    return bool(found) and bool(references) and all(
        question.relation in relative_position(a.box, b.box) for a in found for b in references)
