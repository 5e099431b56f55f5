"""GenEval detector and colour backends behind one protocol, each labelled official or not.

- `world-exact`: the world's exact detector (colours known exactly). World suites only.
- `mask2former-hf`: transformers Mask2Former COCO instance segmentation
  (`facebook/mask2former-swin-small-coco-instance` by default), with mmdet's instance
  post-processing (top 100 of queries x classes, score = class probability x mask score, boxes
  from masks) so scores are comparable to GenEval's detector; the score threshold is applied by
  the GenEval rules, not here. Labels are mapped to GenEval's 80 names by index and checked at
  load time. Not official (other weights and framework than GenEval's).
- `mmdet`: GenEval's own detector through mmdet (`[mmdet]` extra) with GenEval's config and
  checkpoint: labelled official.

Colours for non-world detectors come from `ClipColorClassifier`: transformers CLIP ViT-L/14
zero-shot over GenEval's ten colours with its three templates, on the object's pixels with
#999999 elsewhere, cropped to the box (GenEval's `ImageCrops`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.evaluation.geneval import COLORS
from emf_bench.spatial import Detection, box_from_mask

# mmdet's COCO class order (the detector's label indices), with GenEval's three renames.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
GENEVAL_RENAMES = {"mouse": "computer mouse", "remote": "tv remote",
                   "keyboard": "computer keyboard"}
GENEVAL_CLASSES = tuple(GENEVAL_RENAMES.get(c, c) for c in COCO_CLASSES)
# Other spellings of COCO names in model configs (Detectron2 / HF checkpoints).
_ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
            "pottedplant": "potted plant", "diningtable": "dining table", "tvmonitor": "tv",
            "hair dryer": "hair drier"}
TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")


@runtime_checkable
class Detector(Protocol):
    name: str
    official: bool

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def describe(self) -> dict[str, Any]: ...


def check_label_mapping(id2label: dict[int, str], where: str) -> tuple[str, ...]:
    """GenEval names for a COCO-80 detector's label indices; an error if the model's labels are
    not COCO's 80 classes in mmdet's order."""
    labels = [str(id2label[i]).strip().lower() for i in sorted(id2label)]
    if len(labels) != len(COCO_CLASSES):
        raise EmfBenchError(f"{where}: expected a COCO instance model with 80 classes, got "
                            f"{len(labels)} labels")
    for i, (got, want) in enumerate(zip(labels, COCO_CLASSES, strict=True)):
        got = _ALIASES.get(got, got).replace("-merged", "").replace("-other", "")
        if got != want and got != GENEVAL_RENAMES.get(want):
            raise EmfBenchError(f"{where}: label {i} is {got!r}, GenEval expects {want!r} "
                                f"(labels are matched to GenEval's names by index)")
    return GENEVAL_CLASSES


def mmdet_instance_postprocess(class_logits, mask_logits, max_per_image: int = 100):
    """mmdet's Mask2Former instance post-processing for one image.

    class_logits (Q, C + 1), mask_logits (Q, H, W) at image size -> (labels, scores, masks):
    top `max_per_image` of the flattened query x class probabilities, each score multiplied by
    its mask's mean sigmoid inside the binary mask.
    """
    import torch

    num_classes = class_logits.shape[-1] - 1
    scores = torch.softmax(class_logits.float(), dim=-1)[:, :-1]
    labels = torch.arange(num_classes).repeat(class_logits.shape[0])
    top_scores, top = scores.flatten().topk(min(max_per_image, scores.numel()), sorted=True)
    masks = mask_logits[top // num_classes]
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return labels[top], top_scores * mask_scores, binary


class Mask2FormerDetector:
    """transformers Mask2Former COCO instance segmentation (`mask2former-hf`, not official)."""

    name = "mask2former-hf"
    official = False

    def __init__(self, model: str = "facebook/mask2former-swin-small-coco-instance",
                 device: str | None = "cpu", revision: str | None = None,
                 max_per_image: int = 100):
        import torch
        from transformers import AutoImageProcessor, Mask2FormerForUniversalSegmentation

        from emf_bench.text.base import resolve_device
        from emf_bench.text.hf import hf_load

        self.model_id, self.revision, self.max_per_image = model, revision, max_per_image
        self.device = resolve_device(device)
        card = _card("detector", model, revision)
        self.processor = hf_load(AutoImageProcessor.from_pretrained, card, "image processor")
        self.model = hf_load(Mask2FormerForUniversalSegmentation.from_pretrained, card,
                             "detector")
        self.model.to(self.device).eval()
        self.classes = check_label_mapping(self.model.config.id2label, f"detector {model}")
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "model": self.model_id,
                "revision": self.revision, "postprocess": "mmdet instance (top-100)"}

    def detect(self, image: np.ndarray) -> list[Detection]:
        torch = self._torch
        h, w = image.shape[:2]
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        masks = torch.nn.functional.interpolate(
            out.masks_queries_logits, size=inputs["pixel_values"].shape[-2:], mode="bilinear",
            align_corners=False)
        # The processor resizes (and may pad) the image: undo it before thresholding.
        masks = torch.nn.functional.interpolate(masks, size=(h, w), mode="bilinear",
                                                align_corners=False)[0]
        labels, scores, binary = mmdet_instance_postprocess(out.class_queries_logits[0].cpu(),
                                                            masks.cpu(), self.max_per_image)
        detections = []
        for label, score, mask in zip(labels.tolist(), scores.tolist(), binary.numpy(),
                                      strict=True):
            box = box_from_mask(mask)
            if box is not None:
                detections.append(Detection(self.classes[label], box, score, mask))
        return detections


class MMDetDetector:
    """GenEval's own detector: mmdet Mask2Former Swin-S with GenEval's config and checkpoint."""

    name = "mmdet"
    official = True

    def __init__(self, config: Path, checkpoint: Path, device: str | None = "cpu"):
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError as err:
            raise EmfBenchError(f"the mmdet detector needs the [mmdet] extra (mmdet 3.3 with "
                                f"mmcv 2.1.0 built from source): {err}") from None
        from emf_bench.inputs import existing_file

        existing_file(config, "mmdet config")
        existing_file(checkpoint, "mmdet checkpoint")
        from emf_bench.text.base import resolve_device

        self.config_path, self.checkpoint = str(config), str(checkpoint)
        self.model = init_detector(self.config_path, self.checkpoint,
                                   device=str(resolve_device(device)))
        self._infer = inference_detector
        classes = getattr(self.model, "dataset_meta", {}).get("classes") or getattr(
            self.model, "CLASSES", None)
        if classes is None:
            raise EmfBenchError(f"mmdet model from {config} names no classes")
        self.classes = check_label_mapping(dict(enumerate(classes)), f"mmdet model {config}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": True, "config": self.config_path,
                "checkpoint": self.checkpoint}

    def detect(self, image: np.ndarray) -> list[Detection]:
        result = self._infer(self.model, image[:, :, ::-1].copy())  # mmdet reads BGR arrays
        detections = []
        if hasattr(result, "pred_instances"):  # mmdet 3.x
            inst = result.pred_instances
            masks = inst.masks.cpu().numpy() if "masks" in inst else None
            for i, (box, score, label) in enumerate(zip(inst.bboxes.cpu().numpy(),
                                                        inst.scores.cpu().numpy(),
                                                        inst.labels.cpu().numpy(), strict=True)):
                detections.append(Detection(self.classes[int(label)], tuple(map(float, box)),
                                            float(score), None if masks is None else masks[i]))
            return detections
        bbox, segm = (result if isinstance(result, tuple) else (result, None))  # mmdet 2.x
        for label, rows in enumerate(bbox):
            for j, row in enumerate(rows):
                mask = None if segm is None else np.asarray(segm[label][j], dtype=bool)
                detections.append(Detection(self.classes[label], tuple(map(float, row[:4])),
                                            float(row[4]), mask))
        return detections


class ClipColorClassifier:
    """GenEval's colour classifier through transformers CLIP (`clip-color-hf`): the official one
    runs OpenAI's ViT-L/14 through open_clip; these are the same weights in another framework."""

    name = "clip-color-hf"

    def __init__(self, model: str = "openai/clip-vit-large-patch14", device: str | None = "cpu",
                 revision: str | None = None, background: tuple[int, int, int] = (153, 153, 153)):
        import torch
        from transformers import CLIPModel, CLIPProcessor

        from emf_bench.text.base import resolve_device
        from emf_bench.text.hf import hf_load

        self.model_id, self.revision, self.background = model, revision, background
        self.device = resolve_device(device)
        card = _card("colour-classifier", model, revision)
        self.processor = hf_load(CLIPProcessor.from_pretrained, card, "processor")
        self.model = hf_load(CLIPModel.from_pretrained, card, "CLIP model").to(self.device).eval()
        self._torch = torch
        self._classifiers: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_id, "templates": list(TEMPLATES),
                "background": "#{:02x}{:02x}{:02x}".format(*self.background), "crop": True}

    def classifier(self, classname: str):
        """(10, D) normalised text embeddings: per colour, the mean of its three templates."""
        if classname not in self._classifiers:
            torch = self._torch
            rows = []
            for color in COLORS:
                texts = [t.format(c=color, cls=classname) for t in TEMPLATES]
                tokens = self.processor.tokenizer(texts, padding=True, return_tensors="pt")
                with torch.no_grad():
                    emb = _embedding(self.model.get_text_features(**tokens.to(self.device)))
                emb = emb / emb.norm(dim=-1, keepdim=True)
                mean = emb.mean(0)
                rows.append(mean / mean.norm())
            self._classifiers[classname] = torch.stack(rows)
        return self._classifiers[classname]

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        out = []
        for d in detections:
            canvas = image
            if d.mask is not None:
                if d.mask.shape != image.shape[:2]:
                    raise EmfBenchError(f"detection mask {d.mask.shape} does not match the "
                                        f"image {image.shape[:2]}")
                canvas = np.where(d.mask[:, :, None], image,
                                  np.array(self.background, dtype=np.uint8))
            x1, y1, x2, y2 = (round(v) for v in d.box)
            crop = canvas[max(y1, 0):max(y2, y1 + 1), max(x1, 0):max(x2, x1 + 1)]
            out.append(np.ascontiguousarray(crop))
        return out

    def __call__(self, image: np.ndarray, detections: list[Detection],
                 classname: str) -> list[str]:
        if not detections:
            return []
        torch = self._torch
        pixels = self.processor(images=self.crops(image, detections),
                                return_tensors="pt")["pixel_values"].to(self.device)
        with torch.no_grad():
            feats = _embedding(self.model.get_image_features(pixel_values=pixels))
        feats = feats / feats.norm(dim=-1, keepdim=True)
        index = (feats @ self.classifier(classname).T).argmax(dim=1)
        return [COLORS[i] for i in index.tolist()]


def _card(name: str, model: str, revision: str | None):
    """A card for `hf_load`: the same loading path (Hub id or local folder, local_files_only
    when offline, remote code off) as the encoders."""
    from emf_bench.text.card import EncoderCard

    return EncoderCard(name=name, backend="transformers", model=model, revision=revision)


def _embedding(output):
    """transformers 5 returns a model output where 4.x returned the tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


def _world_exact(world: dict[str, Any], **_) -> Detector:
    from emf_bench.world import World, WorldConfig

    return World(WorldConfig.from_dict(world)).detector()  # speaks the protocol already


def _mask2former(device: str | None, model: str | None, **_) -> Detector:
    return Mask2FormerDetector(model or "facebook/mask2former-swin-small-coco-instance", device)


def _mmdet(device: str | None, mmdet_config: Path | None, mmdet_checkpoint: Path | None,
           **_) -> Detector:
    if mmdet_config is None or mmdet_checkpoint is None:
        raise EmfBenchError("--detector mmdet needs --mmdet-config and --mmdet-checkpoint "
                            "(GenEval's mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco)")
    return MMDetDetector(mmdet_config, mmdet_checkpoint, device)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "world-exact": _world_exact, "mask2former-hf": _mask2former, "mmdet": _mmdet}


def load_detector(name: str, world: dict[str, Any] | None = None, device: str | None = "cpu",
                  model: str | None = None, mmdet_config: Path | None = None,
                  mmdet_checkpoint: Path | None = None) -> Detector:
    if name not in DETECTORS:
        raise unknown_name("detector", name, DETECTORS)
    return DETECTORS[name](world=world or {}, device=device, model=model,
                           mmdet_config=mmdet_config, mmdet_checkpoint=mmdet_checkpoint)
