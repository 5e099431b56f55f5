"""Detector, colour, VQA and generator backends on tiny random models built offline (scores
mean nothing there: architecture, label mapping and plumbing are what count), and fakes for
the optional libraries that are not installed."""

import sys
import types

import numpy as np
import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation.detectors import (
    COCO_CLASSES,
    GENEVAL_CLASSES,
    ClipColorClassifier,
    Mask2FormerDetector,
    MMDetDetector,
    check_label_mapping,
    mmdet_instance_postprocess,
)
from emf_bench.evaluation.geneval import COLORS
from emf_bench.evaluation.vqa import MPlugVQA, TransformersVQA
from emf_bench.spatial import Detection


def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)


def test_mask2former_runs_end_to_end_with_genevals_label_mapping(tiny_backends):
    detector = Mask2FormerDetector(str(tiny_backends["mask2former"]), device="cpu")
    assert detector.classes == GENEVAL_CLASSES and not detector.official
    detections = detector.detect(image())
    assert detections and len(detections) <= 6 * 80
    for d in detections:
        assert d.label in GENEVAL_CLASSES and 0 <= d.score <= 1
        assert d.mask.shape == (48, 40)
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 40 and 0 <= y1 < y2 <= 48


def test_label_mapping_is_checked_at_load_time():
    assert check_label_mapping(dict(enumerate(COCO_CLASSES)), "m")[64] == "computer mouse"
    with pytest.raises(EmfBenchError, match="80 classes, got 3"):
        check_label_mapping({0: "a", 1: "b", 2: "c"}, "m")
    swapped = dict(enumerate(COCO_CLASSES))
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(EmfBenchError, match="label 1 is 'car', GenEval expects 'bicycle'"):
        check_label_mapping(swapped, "m")


def test_mmdet_postprocessing_ranks_queries_by_class_times_mask_score():
    logits = torch.full((2, 4), -10.0)
    logits[0, 1], logits[1, 2] = 5.0, 3.0  # query 0 -> class 1, query 1 -> class 2
    masks = torch.full((2, 6, 6), -5.0)
    masks[0, :3, :3], masks[1, 3:, 3:] = 5.0, 5.0
    labels, scores, binary = mmdet_instance_postprocess(logits, masks, max_per_image=2)
    assert labels.tolist() == [1, 2]
    assert scores[0] > scores[1] and binary[0, :3, :3].all() and not binary[0, 3:, 3:].any()


def test_clip_colour_classifier_uses_genevals_crops_and_templates(tiny_backends):
    classifier = ClipColorClassifier(str(tiny_backends["clip"]), device="cpu")
    img = np.zeros((20, 20, 3), dtype=np.uint8)
    img[5:10, 5:10] = (255, 0, 0)
    mask = np.zeros((20, 20), dtype=bool)
    mask[6:9, 6:9] = True
    d = Detection("car", (5.0, 5.0, 10.0, 10.0), 0.9, mask)
    crop = classifier.crops(img, [d])[0]
    assert crop.shape == (5, 5, 3)
    assert tuple(crop[0, 0]) == (153, 153, 153) and tuple(crop[2, 2]) == (255, 0, 0)
    assert classifier.classifier("car").shape == (10, 16)
    colours = classifier(img, [d, d], "car")
    assert len(colours) == 2 and set(colours) <= set(COLORS)


def test_vilt_vqa_answers_yes_or_no(tiny_backends):
    vqa = TransformersVQA(str(tiny_backends["vilt"]), device="cpu")
    assert vqa.mode == "classifier" and not vqa.official
    answers = vqa.answer(image()[:32, :32], ["is there a red circle?", "is there a circle?"])
    assert len(answers) == 2 and set(answers) <= {"yes", "no"}


def test_missing_local_models_are_one_clear_error(tmp_path):
    with pytest.raises(EmfBenchError, match="does not exist"):
        Mask2FormerDetector(str(tmp_path / "nothing"))
    with pytest.raises(EmfBenchError, match="does not exist"):
        TransformersVQA(str(tmp_path / "nothing"))


def test_mmdet_adapter_with_a_fake_mmdet(monkeypatch, tmp_path):
    class Instances(dict):
        def __init__(self):
            super().__init__(masks=1)
            self.bboxes = torch.tensor([[1.0, 2.0, 5.0, 6.0]])
            self.scores = torch.tensor([0.8])
            self.labels = torch.tensor([64])
            self.masks = torch.zeros(1, 8, 8, dtype=torch.bool)

    model = types.SimpleNamespace(dataset_meta={"classes": COCO_CLASSES})
    apis = types.ModuleType("mmdet.apis")
    apis.init_detector = lambda config, checkpoint, device: model
    apis.inference_detector = lambda m, img: types.SimpleNamespace(pred_instances=Instances())
    monkeypatch.setitem(sys.modules, "mmdet", types.ModuleType("mmdet"))
    monkeypatch.setitem(sys.modules, "mmdet.apis", apis)
    (tmp_path / "c.py").write_text("")
    (tmp_path / "w.pth").write_bytes(b"")
    detector = MMDetDetector(tmp_path / "c.py", tmp_path / "w.pth")
    assert detector.official
    (d,) = detector.detect(np.zeros((8, 8, 3), dtype=np.uint8))
    assert d.label == "computer mouse" and d.box == (1.0, 2.0, 5.0, 6.0)
    assert d.score == pytest.approx(0.8) and d.mask.shape == (8, 8)


def test_mplug_adapter_with_a_fake_modelscope(monkeypatch):
    calls = []

    def pipeline(task, model, device):
        def run(inputs):
            calls.append(inputs["question"])
            return {"text": "Yes"}
        return run

    pipelines = types.ModuleType("modelscope.pipelines")
    pipelines.pipeline = pipeline
    constant = types.ModuleType("modelscope.utils.constant")
    constant.Tasks = types.SimpleNamespace(visual_question_answering="vqa")
    for name, module in {"modelscope": types.ModuleType("modelscope"),
                         "modelscope.pipelines": pipelines,
                         "modelscope.utils": types.ModuleType("modelscope.utils"),
                         "modelscope.utils.constant": constant}.items():
        monkeypatch.setitem(sys.modules, name, module)
    vqa = MPlugVQA()
    assert vqa.official and vqa.answer(image(), ["Is there a cat?"]) == ["yes"]
    assert calls == ["Is there a cat?"]
