"""The `TextEncoder` protocol and the base class every backend builds on.

The base class owns what all backends share: prompt templating, length-sorted batching (less
padding), pooling, truncation bookkeeping (warned once per encoder), device and dtype. A backend
implements `_encode_batch(texts) -> (tokens, mask, truncated)` and, if its weights live
somewhere, `weights_signature` (cheap: never loads the model).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from emf_bench.errors import EmfBenchError, in_range
from emf_bench.text.card import EncoderCard
from emf_bench.text.features import TextFeatures, pad_sequences, pool


class UnsupportedText(EmfBenchError):
    """An encoder cannot represent this text at all (class-label outside the world's catalogue).

    Metrics that need such texts are reported as not applicable to the encoder, with the reason.
    """


TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@runtime_checkable
class TextEncoder(Protocol):
    """What the metrics and the probe need from an encoder."""

    card: EncoderCard

    def encode(self, texts: Sequence[str]) -> TextFeatures: ...


def resolve_device(device: str | None) -> torch.device:
    """A torch device from "auto", "cpu", "cuda", "cuda:1". Under torchrun, "auto" and a bare
    "cuda" mean this rank's GPU (LOCAL_RANK), not GPU 0 for every rank."""
    import os

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise EmfBenchError(f"unknown device {device!r}: {err}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise EmfBenchError(f"device {device!r} asked for, but this torch "
                                f"({torch.__version__}) sees no CUDA GPU; use --device cpu "
                                f"(or auto)")
        if (resolved.index or 0) >= count:
            raise EmfBenchError(f"device {device!r} asked for, but only {count} CUDA GPU(s) "
                                f"are visible (cuda:0 to cuda:{count - 1})")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise EmfBenchError(f"device {device!r} asked for, but MPS is not available here; use "
                            f"--device cpu (or auto)")
    return resolved


class Encoder:
    """Base class of the backends (see module docstring)."""

    # Whether the backend reads the card's `layer` (hidden states of a chosen layer); the others
    # refuse a layer other than "last" rather than ignore it.
    CHOOSES_LAYER = False
    # The card `options` this backend reads, by name, with their types (`typed.matches`); any
    # other option, or a value of another type, is refused before anything loads.
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
        in_range("batch size", batch_size, 1)
        self.check_card(card)
        self.card = card
        self.device = resolve_device(device)
        self.dtype = TORCH_DTYPES[card.dtype]
        self.batch_size = batch_size
        self.calls = 0  # forward batches run (tests count them to prove the cache works)
        self._warned_truncation = False

    # -- to implement -----------------------------------------------------------------------

    def _encode_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (B, L, D), mask (B, L) bool, truncated (B,) bool) for prompt-formatted texts."""
        raise NotImplementedError

    @classmethod
    def weights_signature(cls, card: EncoderCard) -> str:
        """Identifies the weights the card resolves to, without loading them."""
        return model_signature(card.model, card.revision) if card.model else ""

    @classmethod
    def check_card(cls, card: EncoderCard) -> None:
        """Refuse card settings this backend would silently ignore or cannot use."""
        from emf_bench.typed import check_value

        where = f"encoder {card.name!r} ({card.source or 'card'})"
        unknown = sorted(set(card.options) - set(cls.OPTIONS))
        if unknown:
            raise EmfBenchError(f"{where}: unknown option(s) {unknown} for backend "
                                f"{card.backend}; known: {sorted(cls.OPTIONS) or 'none'}")
        for name, value in card.options.items():
            check_value(value, cls.OPTIONS[name], f"options.{name}", where)
        if card.layer != "last" and not cls.CHOOSES_LAYER:
            raise EmfBenchError(f"{card.name}: the {card.backend} backend has no choice of layer "
                                f"(asked for layer {card.layer!r}); layers apply to the "
                                f"transformers backends (CLIP, T5, decoder LLMs, BLIP3o-NEXT)")

    # -- shared -----------------------------------------------------------------------------

    def _pool(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool(tokens, mask, self.card.pooling)

    def encode_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], TextFeatures]]:
        """Batches in order of text length; each yields the texts' indices and their features."""
        if not texts:
            raise EmfBenchError(f"{self.card.name}: nothing to encode (empty text list)")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            indices = order[start:start + self.batch_size]
            prompts = [self.card.format_prompt(texts[i]) for i in indices]
            with torch.inference_mode():
                tokens, mask, truncated = self._encode_batch(prompts)
                self.calls += 1
                pooled = self._pool(tokens, mask)
            if truncated.any():
                self._warn_truncation(int(truncated.sum()), len(indices))
            yield indices, TextFeatures(tokens.float().cpu(), mask.cpu(), pooled.float().cpu(),
                                        truncated.cpu())

    def encode(self, texts: Sequence[str]) -> TextFeatures:
        """Features of `texts`, in their order (one padded batch)."""
        sequences: list[torch.Tensor | None] = [None] * len(texts)
        pooled: list[torch.Tensor | None] = [None] * len(texts)
        truncated = torch.zeros(len(texts), dtype=torch.bool)
        for indices, features in self.encode_batches(texts):
            for row, i in enumerate(indices):
                sequences[i] = features.tokens[row, features.mask[row]]
                pooled[i] = features.pooled[row]
                truncated[i] = features.truncated[row]
        tokens, mask = pad_sequences(sequences)  # type: ignore[arg-type]
        return TextFeatures(tokens, mask, torch.stack(pooled), truncated)  # type: ignore[arg-type]

    def _warn_truncation(self, count: int, total: int) -> None:
        if not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{self.card.name}: texts longer than the encoder's maximum length are truncated "
                f"({count} of {total} in the first batch that had any); the count is recorded "
                f"in the results", stacklevel=2)


def is_local_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


def model_signature(model: str, revision: str | None = None) -> str:
    """Local folder: names, sizes and mtimes of its files. Hub id: the cached snapshot's commit
    (else the requested revision). Cheap: reads no weights."""
    path = Path(model).expanduser()
    if path.is_dir():
        entries = sorted(
            f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
            for p in path.rglob("*") if p.is_file())
        return "local:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    if is_local_path(model):
        return f"missing:{model}"
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(model, revision=revision, local_files_only=True)
        return f"hub:{model}@{Path(snapshot).name}"
    except Exception:  # not cached (yet): the revision asked for is all we know
        return f"hub:{model}@{revision or 'main'}"


def verbose() -> bool:
    """`emf-bench --verbose`: the libraries' own load reports and logs reach the terminal."""
    return bool(os.environ.get("EMF_BENCH_VERBOSE"))


@contextlib.contextmanager
def library_logs(library) -> Iterator[None]:
    """transformers' or diffusers' logging at error level inside the block, unless --verbose:
    their load reports (UNEXPECTED / MISSING tables) stay out of emf-bench's terminal."""
    if verbose():
        yield
        return
    logging = library.utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
