"""Hugging Face transformers backends: CLIP text tower, T5 encoder, decoder-LLM hidden states.

Models load from a Hub id or a local folder through `from_pretrained` (`local_files_only` when
HF_HUB_OFFLINE is set), with `trust_remote_code` only where the card says so. Loading errors
(missing path, gated or missing weights, no network) become one line naming the card.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from emf_bench.errors import EmfBenchError
from emf_bench.text.base import Encoder, is_local_path, library_logs, offline, verbose
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import mask_positions


def hf_load(loader: Callable[..., Any], card: EncoderCard, what: str = "model",
            source: str | None = None, **kwargs: Any) -> Any:
    """`loader(source, ...)` with the card's revision and trust settings; errors as one line."""
    source = source or card.model
    if not source:
        raise EmfBenchError(f"encoder {card.name!r}: its card names no model ({card.source})")
    if is_local_path(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise EmfBenchError(f"encoder {card.name!r}: local path {source} does not exist"
                                f"{f' (card {card.source})' if card.source else ''}")
        source = str(path)
    # a transformers model's own loader tells which weights it had to initialise
    report = what == "model" and not verbose() and getattr(loader, "__name__", "") == \
        "from_pretrained"
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # emf-bench shows its own progress
        with library_logs(transformers):
            loaded = loader(source, revision=card.revision,
                            trust_remote_code=card.trust_remote_code,
                            local_files_only=offline(),
                            **kwargs, **({"output_loading_info": True} if report else {}))
    except EmfBenchError:
        raise
    except Exception as err:  # transformers / huggingface_hub raise many types for the same cause
        at = f" at revision {card.revision}" if card.revision and not is_local_path(source) \
            else ""
        raise EmfBenchError(f"encoder {card.name!r}: cannot load {what} {source!r}{at}: "
                            f"{_explain(err)}") from None
    if not report:
        return loaded
    model, info = loaded
    if missing := info.get("missing_keys"):
        import typer

        missing = sorted(missing)
        typer.echo(f"note: encoder {card.name!r}: {len(missing)} weight(s) not in {source} "
                   f"were newly initialised ({', '.join(missing[:3])}"
                   f"{', ...' if len(missing) > 3 else ''}); --verbose shows transformers' "
                   f"load report", err=True)
    return model


def _explain(err: Exception) -> str:
    name = type(err).__name__
    text = " ".join(str(err).split())
    if name == "GatedRepoError" or "gated repo" in text.lower():
        return ("the repository is gated: accept its licence on huggingface.co and log in "
                "(`hf auth login`), or point the card at a local copy")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return f"{name}: check the model id and revision"
    if "couldn't connect" in text or name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") \
            or "offline mode" in text.lower() or "local_files_only" in text:
        return ("the weights are not in the local Hugging Face cache and cannot be downloaded "
                "here; download them elsewhere or point the card at a local folder "
                "(set HF_HUB_OFFLINE=1 to fail fast)")
    return f"{name}: {text[:300]}"


def tokenize(tokenizer: Any, texts: list[str], max_length: int, device: torch.device,
             **kwargs: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenize with padding and truncation; also say which texts were truncated.

    A token covers at least one byte, so only texts of at least `max_length` - 4 bytes can be
    cut; just those are tokenized a second time, untruncated, to find out.
    """
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt", **kwargs)
    truncated = torch.zeros(len(texts), dtype=torch.bool)
    candidates = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) >= max_length - 4]
    if candidates:
        full = tokenizer([texts[i] for i in candidates], truncation=False, **kwargs)["input_ids"]
        for i, ids in zip(candidates, full, strict=True):
            truncated[i] = len(ids) > max_length
    return {k: v.to(device) for k, v in batch.items()}, truncated


def select_layer(hidden_states: tuple[torch.Tensor, ...], last: torch.Tensor,
                 layer: str | int) -> torch.Tensor:
    """The card's layer: `last` (the model's final output), an index into the hidden states
    (0 = embeddings, negative from the end), or `mean-norm`, the mean over all transformer
    layers of each layer's states layer-normalised without affine parameters."""
    if layer == "last":
        return last
    if layer == "mean-norm":
        layers = [torch.nn.functional.layer_norm(h.float(), h.shape[-1:])
                  for h in hidden_states[1:]]
        return torch.stack(layers).mean(dim=0)
    try:
        return hidden_states[int(layer)]
    except IndexError:
        raise EmfBenchError(f"layer {layer} does not exist: the model has {len(hidden_states)} "
                            f"hidden states (0 = embeddings)") from None


class _TransformersEncoder(Encoder):
    """Shared loading and forward for encoder-style models (CLIP text, T5)."""

    CHOOSES_LAYER = True

    model_class: str = ""
    default_max_length = 512

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        import transformers

        self.tokenizer = hf_load(transformers.AutoTokenizer.from_pretrained, card, "tokenizer")
        self.model = hf_load(getattr(transformers, self.model_class).from_pretrained, card,
                             "model", dtype=self.dtype).to(self.device).eval()
        model_max = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = card.max_length or model_max or self.default_max_length

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, truncated = tokenize(self.tokenizer, texts, self.max_length, self.device)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=self.card.layer != "last")
        tokens = select_layer(out.hidden_states or (), out.last_hidden_state, self.card.layer)
        return tokens, batch["attention_mask"].bool(), truncated


class CLIPTextEncoder(_TransformersEncoder):
    """CLIP's text tower (`openai/clip-vit-large-patch14` in the paper): 77 tokens at most;
    `last` is the output after the final layer norm, what Stable Diffusion-style models use."""

    model_class = "CLIPTextModel"
    default_max_length = 77


class T5TextEncoder(_TransformersEncoder):
    """The T5 encoder stack (`google/t5-v1_1-xxl` in the paper)."""

    model_class = "T5EncoderModel"


class DecoderLLMEncoder(Encoder):
    """Hidden states of a decoder LLM (Gemma, Qwen, ...).

    Layer: `last`, an index, or `mean-norm`. With `chat_template: true` the prompt is wrapped as
    a user turn (options: `system_prompt`, `add_generation_prompt`). Position ids follow the
    attention mask, so left and right padding give the same features.
    """

    CHOOSES_LAYER = True
    OPTIONS: ClassVar[dict[str, Any]] = {"system_prompt": str, "add_generation_prompt": bool}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        import transformers

        self.tokenizer = hf_load(transformers.AutoTokenizer.from_pretrained, card, "tokenizer")
        if card.padding_side:
            self.tokenizer.padding_side = card.padding_side
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = self._load_model().to(self.device).eval()
        self.max_length = card.max_length or getattr(
            self.model.config, "max_position_embeddings", 2048)

    def _load_model(self) -> Any:
        import transformers

        return hf_load(transformers.AutoModel.from_pretrained, self.card, "model",
                       dtype=self.dtype)

    def _format(self, text: str) -> str:
        if not self.card.chat_template:
            return text
        messages = []
        if self.card.options.get("system_prompt"):
            messages.append({"role": "system", "content": self.card.options["system_prompt"]})
        messages.append({"role": "user", "content": text})
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise EmfBenchError(f"encoder {self.card.name!r}: chat_template is on but the "
                                f"tokenizer of {self.card.model} has no chat template")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False,
            add_generation_prompt=self.card.options.get("add_generation_prompt", True))

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        texts = [self._format(t) for t in texts]
        special = not self.card.chat_template  # a chat template already adds its own tokens
        batch, truncated = tokenize(self.tokenizer, texts, self.max_length, self.device,
                                    add_special_tokens=special)
        mask = batch["attention_mask"]
        positions = mask_positions(mask)
        out = self.model(input_ids=batch["input_ids"], attention_mask=mask,
                         position_ids=positions, output_hidden_states=True)
        # Causal-LM heads return no last_hidden_state; their last hidden state is the same.
        last = getattr(out, "last_hidden_state", None)
        tokens = select_layer(out.hidden_states, out.hidden_states[-1] if last is None else last,
                              self.card.layer)
        return tokens, mask.bool(), truncated
