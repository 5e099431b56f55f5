"""A chat vision-language model through transformers, answering GenEval 2's questions with
probabilities (Soft-TIFA): `AutoProcessor` + `AutoModelForImageTextToText`, the official
Qwen3-VL-8B-Instruct by default, any chat VLM by Hub id or local folder.

One forward pass per question gives the next-token distribution after the chat template with
the image and "{question} Answer in one word."; the questions of one image go in left-padded
batches. The answer's probability and TIFA's hard answer follow `geneval2.answer_probability`
(official token rule, or corrected). Loading errors and models that are not chat VLMs are one
line naming the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.evaluation import geneval2

QWEN3_VL = "Qwen/Qwen3-VL-8B-Instruct"


class ChatVLM:
    def __init__(self, model: str = QWEN3_VL, device: str | None = "cpu",
                 dtype: str = "auto", batch_size: int = 8, revision: str | None = None):
        from emf_bench.text.base import resolve_device

        self.model_id, self.revision, self.batch_size = model, revision, batch_size
        self.device = resolve_device(device)
        self.processor, self.model = self._load(model, dtype)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        template = getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None)
        if self.tokenizer is None or template is None:
            raise EmfBenchError(f"VLM {model}: its processor has no tokenizer or chat template; "
                                f"a chat vision-language model is needed")
        self.official = model == QWEN3_VL
        self.name = f"vlm:{model}"
        self._first: dict[str, int] = {}

    def _load(self, model: str, dtype: str):
        import transformers

        from emf_bench.text.base import is_local_path, library_logs, offline

        if is_local_path(model) and not Path(model).expanduser().exists():
            raise EmfBenchError(f"VLM path {model} does not exist")
        if dtype == "auto":  # bf16 where the device does it natively
            from emf_bench.probe.precision import bf16_support

            dtype = "bfloat16" if bf16_support(self.device) else "float32"
        transformers.utils.logging.disable_progress_bar()  # emf-bench shows its own progress
        try:
            with library_logs(transformers):
                processor = transformers.AutoProcessor.from_pretrained(
                    model, revision=self.revision, local_files_only=offline())
                network = transformers.AutoModelForImageTextToText.from_pretrained(
                    model, revision=self.revision, local_files_only=offline(),
                    dtype=getattr(torch, dtype))
        except Exception as err:  # transformers raises many types for the same cause
            raise EmfBenchError(f"cannot load VLM {model!r} (a chat vision-language model "
                                f"for AutoModelForImageTextToText): "
                                f"{str(err).splitlines()[0][:300]}") from None
        self.dtype = dtype
        return processor, network.to(self.device).eval()

    def describe(self) -> dict[str, Any]:
        from emf_bench.text.base import model_signature

        return {"name": self.name, "official": self.official, "model": self.model_id,
                "revision": self.revision,
                "weights": model_signature(self.model_id, self.revision), "dtype": self.dtype}

    def first_token(self, text: str) -> int:
        """The first token id of `text` alone, as the official rule takes it."""
        if text not in self._first:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if not ids:
                raise EmfBenchError(f"VLM {self.model_id}: {text!r} tokenizes to nothing")
            self._first[text] = ids[0]
        return self._first[text]

    @torch.inference_mode()
    def next_token_probs(self, image: np.ndarray, prompts: Sequence[str]) -> torch.Tensor:
        """(len(prompts), vocabulary) next-token probabilities, one chat turn a prompt."""
        from PIL import Image

        picture = Image.fromarray(np.ascontiguousarray(image))
        out = []
        for start in range(0, len(prompts), self.batch_size):
            part = prompts[start:start + self.batch_size]
            texts = [self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                add_generation_prompt=True, tokenize=False) for q in part]
            self.tokenizer.padding_side = "left"
            inputs = self.processor(text=texts, images=[picture] * len(part),
                                    return_tensors="pt", padding=True).to(self.device)
            logits = self.model(**inputs).logits[:, -1].float()
            out.append(logits.softmax(-1).cpu())
        return torch.cat(out)

    def answer(self, image: np.ndarray, questions: Sequence[str], answers: Sequence[str],
               compat: str = "corrected") -> tuple[list[float], list[bool]]:
        """Per question: the probability of its answer (Soft-TIFA) and whether the most likely
        token starts an accepted spelling (TIFA)."""
        probs = self.next_token_probs(image, [q + geneval2.QUESTION_SUFFIX for q in questions])
        soft, hard = [], []
        for row, question, answer in zip(probs, questions, answers, strict=True):
            accepted = geneval2.spellings(question, answer)
            soft.append(geneval2.answer_probability(row, self.first_token, accepted, compat))
            hard.append(geneval2.is_accepted(int(row.argmax()), self.first_token, accepted))
        return soft, hard

    def vqascore(self, image: np.ndarray, prompt: str) -> float:
        """The probability of "Yes" to GenEval 2's VQAScore question about the whole prompt."""
        row = self.next_token_probs(image, [geneval2.VQASCORE_QUESTION.format(prompt=prompt)])[0]
        return float(row[self.first_token("Yes")])
