"""Batched autoregressive sampling in which every row draws from its own random generator, so a
row's tokens do not depend on the batch it landed in (the feature cache stores a caption's
features once, whatever batch computed them).

Prompts are left-padded (as EMF's BLIP3o-NEXT inference code does), position ids follow the
attention mask, and decoding reuses the key-value cache. Logits are warped in Hugging Face's
order (temperature, top-k, top-p) and each row is sampled by inverse CDF from one uniform draw
of its own generator: in one batch or alone, the same draw picks the same token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from emf_bench.text.features import mask_positions


def warp(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Probabilities (B, V) after temperature, top-k and top-p (nucleus) filtering."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, index = torch.sort(logits, dim=-1, descending=False)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - top_p  # the lowest tokens whose mass stays under 1 - top_p
        drop[:, -1] = False  # the most likely token always stays
        logits = logits.masked_fill(drop.scatter(1, index, drop), float("-inf"))
    return logits.softmax(-1)


def draw(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row: inverse CDF at a uniform from the row's own generator."""
    uniforms = torch.stack([torch.rand((), generator=g, device=g.device) for g in generators])
    cdf = probs.double().cumsum(-1)
    cdf = cdf / cdf[:, -1:]  # exact 1 at the end: a uniform never falls past it
    picked = torch.searchsorted(cdf, uniforms.to(cdf.device, cdf.dtype)[:, None], right=True)
    return picked[:, 0].clamp(max=probs.shape[-1] - 1)


@torch.inference_mode()
def sample_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 generators: Sequence[torch.Generator], new_tokens: int, temperature: float,
                 top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequences (B, L + new_tokens), their attention mask): left-padded prompts continued by
    `new_tokens` sampled tokens each."""
    import inspect

    # transformers 5 names the key-value cache `cache`; earlier versions `past_key_values`
    name = "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
    mask = attention_mask.long()
    positions = mask_positions(mask)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                use_cache=True)
    past, logits = getattr(out, name), out.logits[:, -1]
    tokens = []
    last = positions[:, -1:]
    for step in range(new_tokens):
        token = draw(warp(logits, temperature, top_k, top_p), generators)
        tokens.append(token)
        if step == new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        last = last + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=last,
                    use_cache=True, **{name: past})
        past, logits = getattr(out, name), out.logits[:, -1]
    generated = torch.stack(tokens, dim=1)
    full_mask = torch.cat([attention_mask.long(), attention_mask.new_ones(generated.shape).long()],
                          dim=1)
    return torch.cat([input_ids, generated], dim=1), full_mask
