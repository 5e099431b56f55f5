"""Encoder cards: one YAML file per registered text encoder.

A card names a backend and everything that fixes the features it produces (model id or local
path, revision, layer, pooling, maximum length, dtype, prompt template, chat template, backend
options). The feature cache is keyed by exactly those fields (`feature_fields`) plus a signature
of the weights, so changing any of them never returns stale vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError, unknown_name
from emf_bench.typed import check_types

POOLINGS = ("mean", "first", "last")
DTYPES = ("float32", "float16", "bfloat16")
LAYER_WORDS = ("last", "mean-norm")
# Bump when a change to emf-bench alters the features a card produces: old cache entries then
# stop matching instead of being returned.
FEATURE_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class EncoderCard:
    """A registered text encoder (see encoders/*.yaml)."""

    name: str
    backend: str
    model: str | None = None  # Hugging Face id or local path
    revision: str | None = None
    layer: str | int = "last"  # "last", a hidden-state index (negative from the end), "mean-norm"
    pooling: str = "mean"
    max_length: int | None = None  # None: the model's own maximum
    dtype: str = "float32"
    prompt_template: str = "{prompt}"
    chat_template: bool = False
    padding_side: str | None = None  # "left" / "right"; features do not depend on it
    trust_remote_code: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific settings
    paper_reference: str | None = None  # key in benchmarks/paper_reference.yaml
    notes: str = ""
    source: str = field(default="", compare=False)  # where the card was read from

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise EmfBenchError(
                f"encoder name {self.name!r}{where} must be lowercase letters, digits, '.', "
                f"'_' or '-'")
        if self.pooling not in POOLINGS:
            raise unknown_name(f"pooling{where}:", str(self.pooling), POOLINGS)
        if self.dtype not in DTYPES:
            raise unknown_name(f"dtype{where}:", str(self.dtype), DTYPES)
        if not (isinstance(self.layer, int) and not isinstance(self.layer, bool)) \
                and self.layer not in LAYER_WORDS:
            raise EmfBenchError(
                f"layer {self.layer!r}{where} must be 'last', 'mean-norm' or an integer index")
        if self.max_length is not None and (not isinstance(self.max_length, int)
                                            or self.max_length < 1):
            raise EmfBenchError(f"max_length {self.max_length!r}{where} must be a positive integer")
        if "{prompt}" not in self.prompt_template:
            raise EmfBenchError(f"prompt_template{where} must contain '{{prompt}}'")
        if self.padding_side not in (None, "left", "right"):
            raise EmfBenchError(f"padding_side {self.padding_side!r}{where} must be left or right")
        if not isinstance(self.options, dict):
            raise EmfBenchError(f"options{where} must be a mapping")

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> EncoderCard:
        where = source or "encoder card"
        if not isinstance(data, dict):
            raise EmfBenchError(f"{where}: an encoder card must be a mapping of fields")
        known = {f.name for f in fields(cls)} - {"source"}
        for key in data:
            if key not in known:
                raise unknown_name(f"key in {where}:", str(key), known)
        for required in ("name", "backend"):
            if required not in data:
                raise EmfBenchError(f"{where}: missing required field {required!r}")
        check_types(cls, data, where)
        return cls(**data, source=source)

    @classmethod
    def from_file(cls, path: Path) -> EncoderCard:
        from emf_bench.resources import read_yaml

        return cls.from_dict(read_yaml(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("source")
        return out

    def with_overrides(self, **changes: Any) -> EncoderCard:
        data = {**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        return EncoderCard.from_dict(data, source=self.source)

    def for_world(self, world_config: dict[str, Any]) -> EncoderCard:
        """This card bound to a world: `class-label` ids index that world's catalogue, so a
        non-default world must reach the encoder (and its cache key). Other cards are unchanged,
        and so is a card that names its world itself."""
        from emf_bench.world import WorldConfig

        if self.backend != "class-label" or "world" in self.options \
                or world_config == WorldConfig().to_dict():
            return self
        return self.with_overrides(options={**self.options, "world": world_config})

    def feature_fields(self) -> dict[str, Any]:
        """The fields that change the features (device and batch size do not)."""
        return {
            "feature_version": FEATURE_VERSION, "backend": self.backend, "model": self.model,
            "revision": self.revision, "layer": self.layer, "pooling": self.pooling,
            "max_length": self.max_length, "dtype": self.dtype,
            "prompt_template": self.prompt_template, "chat_template": self.chat_template,
            # a card's batch size (options.batch_size) changes speed, never features
            "options": {k: v for k, v in self.options.items() if k != "batch_size"},
        }

    def fingerprint(self, weights_signature: str = "") -> str:
        """A hash of `feature_fields` and the weights' signature: the feature cache's key."""
        payload = json.dumps({**self.feature_fields(), "weights": weights_signature},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def format_prompt(self, text: str) -> str:
        return self.prompt_template.replace("{prompt}", text)
