"""DPG-Bench question answering backends behind one protocol, each labelled official or not.

- `world-oracle`: exact answers for the world's questions, from the exact detector.
- `hf:<model id or path>`: a transformers VQA model: a classifier over answers (ViLT), a
  generative VQA model (BLIP), or a chat vision-language model (image-text-to-text), asked for a
  yes/no answer. Not official.
- `vlm[:<model>]`: a chat vision-language model (Qwen3-VL-8B-Instruct by default, GenEval 2's
  VLM) answering from its next-token probabilities of "yes" and "no". Not official.
- `mplug`: DPG-Bench's own mPLUG-large through modelscope (optional): official.

Answers are normalised to lower case; DPG-Bench scores an answer 1 only if it is exactly "yes".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.evaluation.geneval2 import YES_SPELLINGS

MPLUG = "damo/mplug_visual-question-answering_coco_large_en"


@runtime_checkable
class VQA(Protocol):
    name: str
    official: bool

    def answer(self, image: np.ndarray, questions: Sequence[str]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


def normalise(answer: str) -> str:
    return " ".join(str(answer).strip().lower().rstrip(".!").split())


class TransformersVQA:
    """A transformers VQA or vision-language model (`hf:<model>`, not official)."""

    official = False

    def __init__(self, model: str, device: str | None = "cpu", revision: str | None = None,
                 max_new_tokens: int = 4):
        import torch
        import transformers as tf

        from emf_bench.evaluation.detectors import _card
        from emf_bench.text.base import resolve_device
        from emf_bench.text.hf import hf_load

        self.name, self.model_id, self.revision = f"hf:{model}", model, revision
        self.device, self.max_new_tokens = resolve_device(device), max_new_tokens
        self._torch = torch
        card = _card("vqa", model, revision)
        config = hf_load(tf.AutoConfig.from_pretrained, card, "config")
        self.processor = hf_load(tf.AutoProcessor.from_pretrained, card, "processor")
        vqa_types = tf.models.auto.modeling_auto.MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES
        if config.model_type in vqa_types:
            loader = tf.AutoModelForVisualQuestionAnswering
            self.mode = "classifier" if config.model_type == "vilt" else "generate"
        else:
            loader = tf.AutoModelForImageTextToText
            self.mode = "chat"
        self.model = hf_load(loader.from_pretrained, card, "VQA model").to(self.device).eval()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": False, "model": self.model_id,
                "revision": self.revision, "mode": self.mode}

    def answer(self, image: np.ndarray, questions: Sequence[str]) -> list[str]:
        torch = self._torch
        answers = []
        for question in questions:
            if self.mode == "chat":
                messages = [{"role": "user", "content": [
                    {"type": "image"},
                    {"type": "text", "text": f"{question} Answer yes or no."}]}]
                text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
                inputs = self.processor(images=image, text=text, return_tensors="pt")
            else:
                inputs = self.processor(images=image, text=question, return_tensors="pt")
            inputs = inputs.to(self.device)
            with torch.no_grad():
                if self.mode == "classifier":
                    logits = self.model(**inputs).logits[0]
                    answers.append(normalise(self.model.config.id2label[int(logits.argmax())]))
                    continue
                out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                          do_sample=False)
            if self.mode == "chat":
                out = out[:, inputs["input_ids"].shape[1]:]
            answers.append(normalise(self.processor.batch_decode(
                out, skip_special_tokens=True)[0]))
        return answers


class VLMYesNo:
    """A chat VLM answering DPG-Bench's yes/no questions (`vlm:<model>`, not official): one
    forward pass per question (the questions of an image batched, as for GenEval 2) and the
    answer "yes" when the first tokens of "yes" spellings get more probability than those of
    "no" ones. A modern stand-in for mPLUG; its scores are not DPG-Bench's."""

    official = False
    YES = YES_SPELLINGS  # GenEval 2's
    NO = ("No", "no", " no", " No")
    SUFFIX = " Answer yes or no."

    def __init__(self, model: str, device: str | None = "cpu"):
        from emf_bench.evaluation.vlm import ChatVLM

        self.vlm = ChatVLM(model, device)
        self.name = self.vlm.name

    def describe(self) -> dict[str, Any]:
        return {**self.vlm.describe(), "official": False,
                "rule": "yes when P(yes spellings) > P(no spellings), distinct first tokens"}

    def yes_probability(self, image: np.ndarray, questions: Sequence[str]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) per question, from the next-token distribution."""
        probs = self.vlm.next_token_probs(image, [q + self.SUFFIX for q in questions])
        yes = list({self.vlm.first_token(s) for s in self.YES})
        no = list({self.vlm.first_token(s) for s in self.NO} - set(yes))
        p_yes, p_no = probs[:, yes].sum(-1), probs[:, no].sum(-1)
        return (p_yes / (p_yes + p_no).clamp_min(1e-12)).tolist()

    def answer(self, image: np.ndarray, questions: Sequence[str]) -> list[str]:
        return ["yes" if p > 0.5 else "no" for p in self.yes_probability(image, questions)]


class MPlugVQA:
    """DPG-Bench's VQA model, mPLUG-large through modelscope (`mplug`, official)."""

    name = "mplug"
    official = True

    def __init__(self, model: str = MPLUG, device: str | None = "cpu"):
        try:
            from modelscope.pipelines import pipeline
            from modelscope.utils.constant import Tasks
        except ImportError as err:
            raise EmfBenchError(f"the mplug VQA backend needs modelscope (pip install "
                                f"'emf-bench[mplug]'): {err}") from None
        from PIL import Image

        self.model_id = model
        self._pipeline = pipeline(Tasks.visual_question_answering, model=model,
                                  device="gpu" if str(device).startswith("cuda") else "cpu")
        self._image = Image.fromarray

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "official": True, "model": self.model_id}

    def answer(self, image: np.ndarray, questions: Sequence[str]) -> list[str]:
        pil = self._image(image)
        return [normalise(self._pipeline({"image": pil, "question": q})["text"])
                for q in questions]


def _world_oracle(model: str, world: dict[str, Any], device: str | None) -> VQA:
    from emf_bench.world import World, WorldConfig

    return World(WorldConfig.from_dict(world)).oracle()  # speaks the protocol already


def _transformers(model: str, world: dict[str, Any], device: str | None) -> VQA:
    if not model:
        raise EmfBenchError("--vqa hf: needs a model id or path (hf:<model>)")
    return TransformersVQA(model, device)


def _vlm(model: str, world: dict[str, Any], device: str | None) -> VQA:
    from emf_bench.evaluation.vlm import QWEN3_VL

    return VLMYesNo(model or QWEN3_VL, device)


def _mplug(model: str, world: dict[str, Any], device: str | None) -> VQA:
    return MPlugVQA(model or MPLUG, device)


# name (the part of --vqa before ":") -> factory(model after ":", world, device)
VQA_BACKENDS: dict[str, Callable[[str, dict[str, Any], str | None], VQA]] = {
    "world-oracle": _world_oracle, "hf": _transformers, "vlm": _vlm, "mplug": _mplug}


def load_vqa(name: str, world: dict[str, Any] | None = None, device: str | None = "cpu") -> VQA:
    """`world-oracle`, `hf:<model>`, `vlm[:<model>]` or `mplug[:<model>]`."""
    kind, _, model = name.partition(":")
    if kind not in VQA_BACKENDS:
        raise unknown_name("VQA backend", name, ["world-oracle", "hf:<model>", "vlm:<model>",
                                                 "mplug"])
    return VQA_BACKENDS[kind](model, world or {}, device)
