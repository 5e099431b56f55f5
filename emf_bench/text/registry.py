"""Which encoders exist: cards (built-in, user folders, entry points) and their backends.

Cards come from, in order (later ones replace earlier ones of the same name): the cards shipped
with emf-bench, folders in `EMF_BENCH_ENCODERS` (os.pathsep-separated), folders passed with
`--encoders-dir`, and Python entry points in the group `emf_bench.encoders` (an EncoderCard, a
card dict, or a callable returning one). Backends are lazy "module:attr" strings, so listing
encoders imports no model library; third-party backends register in `emf_bench.backends`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.inputs import existing_dir
from emf_bench.resources import cards_dir
from emf_bench.text.card import EncoderCard

BACKENDS: dict[str, str] = {
    "transformers-clip": "emf_bench.text.hf:CLIPTextEncoder",
    "transformers-t5": "emf_bench.text.hf:T5TextEncoder",
    "transformers-llm": "emf_bench.text.hf:DecoderLLMEncoder",
    "blip3o-next": "emf_bench.text.blip3o:Blip3oNextEncoder",
    "sentence-transformers": "emf_bench.text.sbert:SentenceTransformerEncoder",
    "open-clip": "emf_bench.text.openclip:OpenCLIPEncoder",
    "class-label": "emf_bench.text.builtin:ClassLabelEncoder",
    "bag-of-words": "emf_bench.text.builtin:BagOfWordsEncoder",
    "random-transformer": "emf_bench.text.builtin:RandomTransformerEncoder",
    "constant": "emf_bench.text.builtin:ConstantEncoder",
}
ENV_DIRS = "EMF_BENCH_ENCODERS"
CARD_GROUP = "emf_bench.encoders"
BACKEND_GROUP = "emf_bench.backends"


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=group))


def backends() -> dict[str, str]:
    found = dict(BACKENDS)
    for ep in _entry_points(BACKEND_GROUP):
        found[ep.name] = ep.value
    return found


def backend_class(name: str, where: str = "") -> type:
    """The backend class for `name` (imports its module now, not before)."""
    known = backends()
    if name not in known:
        raise unknown_name(f"backend{f' (in {where})' if where else ''}", name, known)
    module, _, attr = known[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise EmfBenchError(
            f"backend {name!r} needs a library that is not installed ({err.name or err}); "
            f"see the encoder's card notes for the extra to install") from None


@dataclass
class EncoderRegistry:
    cards: dict[str, EncoderCard] = field(default_factory=dict)
    # One line for each card that replaced another of the same name (a user card shadowing a
    # built-in one): the CLI prints them, so a replaced encoder never goes unnoticed.
    shadowed: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, extra_dirs: Iterable[Path] = ()) -> EncoderRegistry:
        registry = cls()
        registry._add_dir(cards_dir("encoders"))
        env = os.environ.get(ENV_DIRS, "")
        for folder in [Path(p) for p in env.split(os.pathsep) if p] + list(extra_dirs):
            registry._add_dir(existing_dir(folder, "encoder card folder"))
        for ep in _entry_points(CARD_GROUP):
            registry._add(_card_from_entry_point(ep))
        return registry

    def _add_dir(self, folder: Path) -> None:
        seen: dict[str, Path] = {}
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            card = EncoderCard.from_file(path)
            if card.name in seen:
                raise EmfBenchError(
                    f"encoder {card.name!r} is defined twice in {folder}: {seen[card.name].name} "
                    f"and {path.name}")
            seen[card.name] = path
            self._add(card)

    def _add(self, card: EncoderCard) -> None:
        backend_known = card.backend in backends()
        if not backend_known:
            raise unknown_name(f"backend (in {card.source or card.name})", card.backend,
                               backends())
        if card.name in self.cards:
            self.shadowed.append(f"encoder card {card.name!r} from "
                                 f"{card.source or 'an entry point'} replaces the one from "
                                 f"{self.cards[card.name].source}")
        self.cards[card.name] = card

    def names(self) -> list[str]:
        return sorted(self.cards)

    def card(self, name: str) -> EncoderCard:
        if name not in self.cards:
            raise unknown_name("encoder", name, self.cards)
        return self.cards[name]


def _card_from_entry_point(ep: importlib.metadata.EntryPoint) -> EncoderCard:
    where = f"entry point {ep.name} = {ep.value}"
    try:
        obj: Any = ep.load()
    except Exception as err:
        raise EmfBenchError(f"cannot load {where}: {err}") from None
    if callable(obj) and not isinstance(obj, EncoderCard):
        obj = obj()
    if isinstance(obj, EncoderCard):
        return obj
    return EncoderCard.from_dict(obj, source=where)


def load_encoder(card: EncoderCard, device: str | None = "cpu", batch_size: int = 32):
    """Instantiate the card's backend (this is where model weights get loaded)."""
    return backend_class(card.backend, card.source)(card, device=device, batch_size=batch_size)


def weights_signature(card: EncoderCard) -> str:
    return backend_class(card.backend, card.source).weights_signature(card)
