"""`TextFeatures`: what every text encoder returns and everything downstream consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TextFeatures:
    """Token features of a batch of texts, their padding mask, and one pooled vector each.

    tokens: (B, L, D) float; mask: (B, L) bool, True on real tokens; pooled: (B, D) float32
    (masked mean of the tokens unless the encoder's card says otherwise); truncated: (B,) bool,
    True where the text was cut at the encoder's maximum length.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    truncated: torch.Tensor

    def __post_init__(self) -> None:
        b, length, _ = self.tokens.shape
        if (self.mask.shape != (b, length) or self.pooled.shape[0] != b
                or self.truncated.shape != (b,)):
            raise ValueError(
                f"inconsistent TextFeatures shapes: tokens {tuple(self.tokens.shape)}, mask "
                f"{tuple(self.mask.shape)}, pooled {tuple(self.pooled.shape)}, truncated "
                f"{tuple(self.truncated.shape)}")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens (the paper's mean-pooling), computed in float32."""
    weights = mask.to(torch.float32).unsqueeze(-1)
    total = (tokens.to(torch.float32) * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


def pool(tokens: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token features: `mean` (masked), `first` (CLS-style) or `last` (last real token)."""
    if pooling == "mean":
        return masked_mean(tokens, mask)
    if pooling == "first":
        first = mask.to(torch.int64).argmax(dim=1)  # first real token, whatever the padding side
        return tokens[torch.arange(len(tokens)), first].to(torch.float32)
    if pooling == "last":
        length = mask.shape[1]
        last = length - 1 - mask.flip(1).to(torch.int64).argmax(dim=1)
        return tokens[torch.arange(len(tokens)), last].to(torch.float32)
    raise ValueError(f"unknown pooling {pooling!r}")


def pad_sequences(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (L_i, D) tensors into (B, L, D) and a (B, L) bool mask."""
    length = max((s.shape[0] for s in sequences), default=0)
    dim = sequences[0].shape[1] if sequences else 0
    tokens = torch.zeros(len(sequences), max(length, 1), dim,
                         dtype=sequences[0].dtype if sequences else torch.float32)
    mask = torch.zeros(len(sequences), max(length, 1), dtype=torch.bool)
    for i, s in enumerate(sequences):
        tokens[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return tokens, mask


def mask_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that follow an attention mask (B, L): left and right padding give a token
    the same position, so a padded batch sees what each text alone would."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)
