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
  tokens (730 x hidden). Sampling is seeded per text (card option `seed`), so a text's features
  do not depend on what else is in the batch.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

import torch

from emf_bench.errors import EmfBenchError, in_range
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import pad_sequences
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
                                         "view": Literal[VIEWS], "add_generation_prompt": bool}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        self.check_card(card)
        self.settings = {**DEFAULTS, **card.options}
        where = f"options of encoder {card.name!r}"
        in_range(f"image_tokens ({where})", self.settings["image_tokens"], 1)
        in_range(f"top_k ({where})", self.settings["top_k"], 1)
        in_range(f"top_p ({where})", self.settings["top_p"], 0, 1, low_open=True)
        in_range(f"temperature ({where})", self.settings["temperature"], 0, low_open=True)
        super().__init__(card, device, batch_size)
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

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.settings["view"] == "prompt":
            return super()._encode_batch(texts)
        states = [self._image_token_states(t) for t in texts]
        tokens, mask = pad_sequences(states)
        return tokens, mask, torch.zeros(len(texts), dtype=torch.bool)

    def _image_token_states(self, text: str) -> torch.Tensor:
        s = self.settings
        messages = [{"role": "system", "content": s["system_prompt"]},
                    {"role": "user", "content": s["user_template"].replace("{prompt}", text)}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                    add_generation_prompt=True)
        prompt += s["image_start"] + s["scale_token"]
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        digest = hashlib.sha256(f"{s['seed']}\0{text}".encode()).hexdigest()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(digest[:15], 16))
            generated = self.model.generate(
                **ids, max_new_tokens=int(s["image_tokens"]), do_sample=True,
                top_p=float(s["top_p"]), top_k=int(s["top_k"]),
                temperature=float(s["temperature"]),
                pad_token_id=self.tokenizer.pad_token_id)
        out = self.model(input_ids=generated, output_hidden_states=True)
        states = select_layer(out.hidden_states, out.hidden_states[-1], self.card.layer)
        start = ids["input_ids"].shape[1] - 1  # the <S0> token, then every generated token
        return states[0, start:].float()
