"""BLIP3o-NEXT's text side (`BLIP3o/BLIP3o-NEXT-GRPO-Geneval-3B`, `BLIP3o/BLIP3o-NEXT-SFT-3B`).

BLIP3o-NEXT is a Qwen3 language model with image tokens added to its vocabulary; its own
checkpoints carry a custom `model_type` (`blip3o_qwen_inference`) and the diffusion parts. The
adapter loads only the language model, as `Qwen3ForCausalLM` built from the checkpoint's config,
without remote code. Two views (card option `view`):

- `prompt`: hidden states of the prompt's tokens (optionally inside the chat template).
- `image-tokens` (what EMF conditions its generator on): the prompt wrapped in EMF's chat
  template (system "You are a helpful assistant.", user "Please generate image based on the
  following caption: {prompt}", then `<im_start><S0>`), `image_tokens` (729) image tokens
  sampled with top_p 0.95 / top_k 1200, and the last-layer states of `<S0>` plus the generated
  tokens (730 x hidden). Captions of a batch are left-padded and sampled together, each from
  its own generator seeded by (card option `seed`, text), so a text's features do not depend
  on what else is in the batch (text/sampling.py).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

import torch

from emf_bench.errors import EmfBenchError, in_range
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import mask_positions
from emf_bench.text.hf import DecoderLLMEncoder, hf_load, select_layer

VIEWS = ("prompt", "image-tokens")
DEFAULTS: dict[str, Any] = {
    "view": "image-tokens",
    "image_tokens": 729,
    "top_p": 0.95,
    "top_k": 1200,
    "temperature": 1.0,
    "seed": 0,
    "system_prompt": "You are a helpful assistant.",
    "user_template": "Please generate image based on the following caption: {prompt}",
    "image_start": "<im_start>",
    "scale_token": "<S0>",
}


class Blip3oNextEncoder(DecoderLLMEncoder):
    OPTIONS: ClassVar[dict[str, Any]] = {**{k: type(v) for k, v in DEFAULTS.items()},
                                         "view": Literal[VIEWS], "add_generation_prompt": bool,
                                         "batch_size": int}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        self.check_card(card)
        self.settings = {**DEFAULTS, **card.options}
        where = f"options of encoder {card.name!r}"
        in_range(f"image_tokens ({where})", self.settings["image_tokens"], 1)
        in_range(f"top_k ({where})", self.settings["top_k"], 1)
        in_range(f"top_p ({where})", self.settings["top_p"], 0, 1, low_open=True)
        in_range(f"temperature ({where})", self.settings["temperature"], 0, low_open=True)
        if "batch_size" in card.options:  # the card's batch size wins over the command's
            in_range(f"batch_size ({where})", card.options["batch_size"], 1)
            batch_size = card.options["batch_size"]
        super().__init__(card, device, batch_size)
        if self.settings["view"] == "image-tokens":
            self.flush_every = self.batch_size  # minutes a batch: cache every finished one
        if self.settings["view"] == "image-tokens":
            for token in (self.settings["image_start"], self.settings["scale_token"]):
                if self.tokenizer.convert_tokens_to_ids(token) in (None,
                                                                   self.tokenizer.unk_token_id):
                    raise EmfBenchError(
                        f"encoder {card.name!r}: the tokenizer of {card.model} has no {token} "
                        f"token; is this a BLIP3o-NEXT checkpoint?")

    def _load_model(self) -> Any:
        import transformers

        config_dict, _ = hf_load(transformers.PretrainedConfig.get_config_dict, self.card,
                                 "config")
        config_dict = {k: v for k, v in config_dict.items()
                       if k not in ("model_type", "architectures", "auto_map")}
        config = transformers.Qwen3Config.from_dict(config_dict)
        # Loading the language model out of the full BLIP3o-NEXT checkpoint is deliberate:
        # hf_load keeps transformers' warnings about the model type and the unused diffusion
        # weights out of the terminal (--verbose shows them).
        return hf_load(transformers.Qwen3ForCausalLM.from_pretrained, self.card, "model",
                       config=config, dtype=self.dtype)

    @classmethod
    def weights_signature(cls, card: EncoderCard) -> str:
        """The weights', and for the image-token view the sampler's version: the batched
        sampler (text/sampling.py) draws other tokens than the one-at-a-time `generate` it
        replaced, so features cached under that one are not reused."""
        view = {**DEFAULTS, **card.options}["view"]
        base = super().weights_signature(card)
        return f"{base}|sampler:batched-1" if view == "image-tokens" else base

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.settings["view"] == "prompt":
            return super()._encode_batch(texts)
        return self._image_token_states(texts)

    def _image_token_states(self, texts: list[str]
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """EMF's condition for a batch: prompts left-padded and sampled together, each with its
        own generator seeded by (seed, text); the last-layer states of `<S0>` and the sampled
        tokens (all rows the same length: padding is only on the left, in the prompt)."""
        from emf_bench.text.sampling import sample_batch

        s = self.settings
        prompts = []
        for text in texts:
            messages = [{"role": "system", "content": s["system_prompt"]},
                        {"role": "user", "content": s["user_template"].replace("{prompt}", text)}]
            prompts.append(self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True)
                + s["image_start"] + s["scale_token"])
        ids = self.tokenizer(prompts, return_tensors="pt", add_special_tokens=False,
                             padding=True, padding_side="left")
        ids = {k: v.to(self.device) for k, v in ids.items()}
        generators = []
        for text in texts:
            digest = hashlib.sha256(f"{s['seed']}\0{text}".encode()).hexdigest()
            generators.append(torch.Generator(device=self.device).manual_seed(
                int(digest[:15], 16)))
        sequences, mask = sample_batch(
            self.model, ids["input_ids"], ids["attention_mask"], generators,
            int(s["image_tokens"]), float(s["temperature"]), int(s["top_k"]), float(s["top_p"]))
        out = self.model(input_ids=sequences, attention_mask=mask,
                         position_ids=mask_positions(mask), output_hidden_states=True)
        states = select_layer(out.hidden_states, out.hidden_states[-1], self.card.layer)
        start = ids["input_ids"].shape[1] - 1  # every row's <S0>, then its sampled tokens
        tokens = states[:, start:]
        return (tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device),
                torch.zeros(len(texts), dtype=torch.bool))
