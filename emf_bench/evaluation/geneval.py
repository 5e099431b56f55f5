"""GenEval's scoring rules as pure functions (github djghosh13/geneval, evaluate_images.py and
summary_scores.py), shared by every detector backend and by the official and world suites.

Rules take detections and colours as plain data; no model is imported here. Constants are
GenEval's and every one is overridable through `GenEvalRules` (and recorded with results).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from emf_bench.errors import in_range
from emf_bench.spatial import Detection, relative_position

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
          "white")


@dataclass(frozen=True)
class GenEvalRules:
    threshold: float = 0.3  # detection score must be strictly greater
    counting_threshold: float = 0.9  # for every class on counting prompts
    max_objects: int = 16  # kept per class, by score
    nms_threshold: float = 1.0  # 1.0: no extra NMS (GenEval's setting)
    position_threshold: float = 0.1  # c in the relative-position rule

    def __post_init__(self) -> None:
        in_range("--threshold", self.threshold, 0, 1)
        in_range("--counting-threshold", self.counting_threshold, 0, 1)
        in_range("--max-objects", self.max_objects, 1)
        in_range("--nms-threshold", self.nms_threshold, 0, 1, low_open=True)
        in_range("--position-threshold", self.position_threshold, 0, 1)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def keep_detections(detections: Sequence[Detection], tag: str,
                    rules: GenEvalRules = GenEvalRules()) -> dict[str, list[Detection]]:
    """Per class: above the tag's threshold, best first, at most `max_objects`, optional NMS."""
    threshold = rules.counting_threshold if tag == "counting" else rules.threshold
    by_class: dict[str, list[Detection]] = {}
    for d in sorted(detections, key=lambda d: -d.score):
        if d.score > threshold:
            by_class.setdefault(d.label, []).append(d)
    kept = {}
    for label, found in by_class.items():
        found = found[: rules.max_objects]
        chosen: list[Detection] = []
        while found:
            best = found.pop(0)
            chosen.append(best)
            if rules.nms_threshold < 1:
                found = [d for d in found if box_iou(best.box, d.box) < rules.nms_threshold]
        kept[label] = chosen
    return kept


ColorFn = Callable[[list[Detection], str], list[str]]


def detection_colors(found: list[Detection], classname: str) -> list[str]:
    """Colours carried by the detections (the world's exact detector knows them)."""
    return [d.color or "" for d in found]


def evaluate(objects: dict[str, list[Detection]], metadata: dict[str, Any],
             colors: ColorFn = detection_colors, rules: GenEvalRules = GenEvalRules()
             ) -> tuple[bool, str]:
    """GenEval's `evaluate`: (correct, reason) for one image's kept detections."""
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        classname, count = req["class"], req["count"]
        matched = True
        found = objects.get(classname, [])[:count]
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {classname}>={count}, found {len(found)}")
        else:
            if "color" in req:
                got = colors(found, classname)
                if got.count(req["color"]) < count:
                    correct = matched = False
                    reasons.append(
                        f"expected {req['color']} {classname}>={count}, found "
                        f"{got.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{got.count(c)} {c}" for c in COLORS if c in got))
            if "position" in req and matched:
                expected, target = req["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {classname} to be {expected}")
                else:
                    for obj in found:
                        for other in matched_groups[target]:
                            true_rels = relative_position(obj.box, other.box,
                                                          rules.position_threshold)
                            if expected not in true_rels:
                                correct = matched = False
                                reasons.append(f"expected {classname} {expected} target, found "
                                               f"{' and '.join(sorted(true_rels))} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(objects.get(classname, [])) >= req["count"]:
            correct = False
            reasons.append(f"expected {classname}<{req['count']}, found "
                           f"{len(objects[classname])}")
    return correct, "\n".join(reasons)


def score_image(detections: Sequence[Detection], metadata: dict[str, Any],
                colors: ColorFn = detection_colors, rules: GenEvalRules = GenEvalRules()
                ) -> dict[str, Any]:
    kept = keep_detections(detections, metadata["tag"], rules)
    correct, reason = evaluate(kept, metadata, colors, rules)
    return {"tag": metadata["tag"], "prompt": metadata["prompt"], "correct": correct,
            "reason": reason,
            "detections": {k: [d.to_dict() for d in v] for k, v in kept.items()}}


def summarize(rows: Sequence[dict[str, Any]], prompt_key: str = "prompt") -> dict[str, Any]:
    """GenEval's summary: per-task accuracy over images, overall = unweighted task mean, plus
    % correct images and % correct prompts (any image of the prompt correct; a prompt is the
    rows' `prompt_key`)."""
    by_task: dict[str, list[bool]] = {}
    by_prompt: dict[str, list[bool]] = {}
    for r in rows:
        by_task.setdefault(r["tag"], []).append(bool(r["correct"]))
        by_prompt.setdefault(r[prompt_key], []).append(bool(r["correct"]))
    tasks = {t: sum(v) / len(v) for t, v in by_task.items()}
    return {
        "tasks": tasks,
        "overall": sum(tasks.values()) / len(tasks) if tasks else float("nan"),
        "correct_images": sum(r["correct"] for r in rows) / len(rows) if rows else float("nan"),
        "correct_prompts": sum(any(v) for v in by_prompt.values()) / len(by_prompt)
        if by_prompt else float("nan"),
        "images": len(rows),
        "prompts": len(by_prompt),
    }
