"""open_clip backend (optional extra `[openclip]`; it pulls torchvision).

Card: `model` is the open_clip architecture (e.g. `ViT-L-14`), option `pretrained` its weights
tag or a local checkpoint. Token features are the text transformer's outputs after `ln_final`
(B, context, width); the mask covers tokens up to and including the end-of-text token.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text.base import Encoder
from emf_bench.text.card import EncoderCard


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as err:
        raise EmfBenchError(
            "the open-clip backend needs open_clip: pip install -c constraints.txt "
            "'emf-bench[openclip]' (it brings torchvision, which needs a matching torch build)"
        ) from err
    return open_clip


class OpenCLIPEncoder(Encoder):
    """Options: `pretrained` (open_clip's weights tag), `eot_token_id` (the end-of-text id,
    whose state `last` pooling takes; default: the highest id in the sequence)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"pretrained": str | None, "eot_token_id": int | None}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        open_clip = _open_clip()
        if not card.model:
            raise EmfBenchError(f"encoder {card.name!r}: open-clip cards need `model`")
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                card.model, pretrained=card.options.get("pretrained"), device=str(self.device))
            self.tokenizer = open_clip.get_tokenizer(card.model)
        except Exception as err:
            raise EmfBenchError(f"encoder {card.name!r}: cannot load open_clip model "
                                f"{card.model!r}: {err}") from None
        self.model = model.to(self.dtype).eval()
        self.max_length = int(getattr(self.model, "context_length", 77))
        self.eot_id = card.options.get("eot_token_id")

    @classmethod
    def weights_signature(cls, card: EncoderCard) -> str:
        return f"open_clip:{card.model}:{card.options.get('pretrained')}"

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = self.tokenizer(texts).to(self.device)  # (B, context), zero-padded
        m = self.model
        x = m.token_embedding(ids).to(self.dtype) + m.positional_embedding.to(self.dtype)
        batch_first = getattr(m.transformer, "batch_first", True)
        if not batch_first:
            x = x.permute(1, 0, 2)
        x = m.transformer(x, attn_mask=m.attn_mask)
        if not batch_first:
            x = x.permute(1, 0, 2)
        x = m.ln_final(x)
        # OpenAI's tokenizer gives end-of-text the largest id: argmax finds it (as open_clip's
        # own pooling does) unless the card names the id.
        eot = (ids == self.eot_id).int().argmax(dim=-1) if self.eot_id is not None \
            else ids.argmax(dim=-1)
        positions = torch.arange(ids.shape[1], device=ids.device)
        mask = positions[None, :] <= eot[:, None]
        truncated = (ids[:, -1] != 0).cpu()  # the context is full: the text was (likely) cut
        return x, mask, truncated
