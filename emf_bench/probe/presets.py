"""A probe's architecture (`ProbeConfig`, saved with every checkpoint) and its size presets:
one small factory each, named in `PROBE_PRESETS`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from emf_bench.errors import EmfBenchError, unknown_name

CONDITIONING = ("pooled", "tokens", "both")
TIME_MODES = ("interval", "single")  # meanflow: end(t) + interval(t - r); flow matching: t


@dataclass(frozen=True)
class ProbeConfig:
    """Architecture of a probe (saved with every checkpoint)."""

    arch: str = "dit"  # "dit" or "unet"
    image_size: int = 32
    channels: int = 3
    cond_dim: int = 16  # the text encoder's feature size
    conditioning: str = "pooled"
    time: str = "interval"
    null: str = "zero"  # "zero" feature or "learned" embedding
    width: int = 128
    depth: int = 4
    heads: int = 4
    patch: int = 4
    mlp_ratio: float = 4.0
    unet_channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: int = 1
    # The U-Net works on space-to-depth patches (pixel-unshuffle): lossless, and a patch of 2
    # quarters the cost of every level while each output position still paints its 2x2 pixels.
    unet_patch: int = 1
    # Self-attention at the U-Net's lowest resolution: global communication, which a one-step
    # sampler needs to settle where the objects go (16 tokens at 32x32 with patch 2: cheap).
    unet_attention: bool = False
    # Layout maps: the condition (with time) through a linear layer to this many maps at the
    # lowest resolution, mixed into its channels by a 1x1 convolution (zero-initialised). FiLM
    # modulates every position alike and convolutions see no absolute position, so without
    # them where objects go follows the noise, not the prompt. 0: none.
    unet_layout: int = 0
    # t is multiplied by this before the sinusoids. DiT uses 1000; du/dt inherits the factor,
    # and MeanFlow's target v - (t - r) du/dt then runs away: in a sweep (class-label, 1,000
    # steps) the 1-step world score of single objects rose from 0.17 at 1000 to 0.50 at 20.
    time_scale: float = 20.0
    # "u": the network outputs the average velocity. "x": it outputs a clean-image estimate D and
    # u = (z_t - D) / max(t, t_min): one step then returns D itself, and a small network spends
    # its capacity on images instead of on reproducing the noise (as in JiT, "Back to Basics").
    prediction: str = "u"
    t_min: float = 0.05

    @property
    def has_tangent_rules(self) -> bool:
        """Whether the network has hand-written tangent rules (`dual`): the U-Net has."""
        return self.arch == "unet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "unet_channels", tuple(self.unet_channels))
        if self.arch not in ("dit", "unet"):
            raise unknown_name("probe architecture", self.arch, ("dit", "unet"))
        if self.conditioning not in CONDITIONING:
            raise unknown_name("conditioning", self.conditioning, CONDITIONING)
        if self.time not in TIME_MODES:
            raise unknown_name("time conditioning", self.time, TIME_MODES)
        if self.prediction not in ("u", "x"):
            raise unknown_name("prediction", self.prediction, ("u", "x"))
        if self.null not in ("zero", "learned"):
            raise unknown_name("null condition", self.null, ("zero", "learned"))
        if self.arch == "dit" and self.image_size % self.patch:
            raise EmfBenchError(f"image size {self.image_size} is not a multiple of patch "
                                f"{self.patch}")
        if self.arch == "unet" and (self.image_size // self.unet_patch) % 2 ** (
                len(self.unet_channels) - 1):
            raise EmfBenchError(f"image size {self.image_size} cannot be halved "
                                f"{len(self.unet_channels) - 1} times")
        if self.unet_layout < 0:
            raise EmfBenchError(f"unet_layout is a number of layout maps (0: none), got "
                                f"{self.unet_layout}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["unet_channels"] = list(self.unet_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "probe config") -> ProbeConfig:
        from emf_bench.typed import check_types

        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        check_types(cls, data, where)
        return cls(**data)


def cpu_unet(**kw) -> ProbeConfig:
    """For a laptop CPU at 32x32 (train-probe's default): 2x2 space-to-depth, two levels (16x16,
    8x8), self-attention at the lowest one (1.1M parameters), no layout maps."""
    return ProbeConfig(arch="unet", width=128, unet_channels=(48, 96), unet_patch=2,
                       unet_attention=True, **kw)


def cpu_layout_unet(**kw) -> ProbeConfig:
    """`cpu` with 8 layout maps at the lowest level, so that the prompt can place objects
    (position prompts): the CPU studies' preset (docs/experiments.md, "Layout maps")."""
    return replace(cpu_unet(**kw), unet_layout=8)


def cpu_dit(**kw) -> ProbeConfig:
    """A small DiT (patch 4) for a CPU; no hand-written tangents, so its JVP is torch.func's."""
    return ProbeConfig(arch="dit", width=128, depth=4, heads=4, patch=4, **kw)


def gpu_dit_s(**kw) -> ProbeConfig:
    """DiT-S/2's shape, for a GPU."""
    return ProbeConfig(arch="dit", width=384, depth=12, heads=6, patch=2, **kw)


def gpu_dit_b(**kw) -> ProbeConfig:
    """DiT-B/2's shape, for a GPU."""
    return ProbeConfig(arch="dit", width=768, depth=12, heads=12, patch=2, **kw)


def gpu_unet(**kw) -> ProbeConfig:
    """For a GPU: three levels of two blocks each and layout maps (the `full` study's)."""
    return ProbeConfig(arch="unet", width=256, unet_channels=(64, 128, 256), blocks_per_level=2,
                       unet_layout=8, **kw)


def tiny_unet(**kw) -> ProbeConfig:
    """Seconds per hundred steps: for tests and smoke runs, not for quality."""
    return ProbeConfig(arch="unet", width=32, unet_channels=(8, 16), unet_patch=2, **kw)


def latent_kl(**kw) -> ProbeConfig:
    """DiT-S/2 over 4-channel latents (Stable Diffusion's AutoencoderKL: 32x32x4 at 256 px),
    for a GPU."""
    return ProbeConfig(arch="dit", width=384, depth=12, heads=6, patch=2, **kw)


def latent_dc(**kw) -> ProbeConfig:
    """DiT-S with patch 1 over 32-channel latents (SANA's AutoencoderDC, f32c32: 8x8x32 at
    256 px), for a GPU."""
    return ProbeConfig(arch="dit", width=384, depth=12, heads=6, patch=1, **kw)


def cpu_latent(**kw) -> ProbeConfig:
    """A small DiT (patch 1) over latents of any channel count: a CPU, small latents, tests."""
    return ProbeConfig(arch="dit", width=128, depth=4, heads=4, patch=1, **kw)


PROBE_PRESETS = {"cpu": cpu_unet, "cpu-layout": cpu_layout_unet, "cpu-dit": cpu_dit,
                 "gpu-unet": gpu_unet, "gpu-dit-s": gpu_dit_s, "gpu-dit-b": gpu_dit_b,
                 "tiny": tiny_unet, "latent-kl": latent_kl, "latent-dc": latent_dc,
                 "cpu-latent": cpu_latent}

# The space each preset is sized for: (kind, channels; None: any). Unlisted: RGB pixels.
PRESET_SPACES = {"latent-kl": ("latents", 4), "latent-dc": ("latents", 32),
                 "cpu-latent": ("latents", None)}


def preset(name: str, **overrides) -> ProbeConfig:
    if name not in PROBE_PRESETS:
        raise unknown_name("probe size preset", name, PROBE_PRESETS)
    return PROBE_PRESETS[name](**overrides)


def check_space(name: str, kind: str, channels: int | None = None) -> None:
    """Refuse a preset for another space than the data's (channels None: not known yet)."""
    if name not in PROBE_PRESETS:
        raise unknown_name("probe size preset", name, PROBE_PRESETS)
    want, want_channels = PRESET_SPACES.get(name, ("pixels", 3))
    fitting = [n for n in PROBE_PRESETS if PRESET_SPACES.get(n, ("pixels", 3))[0] == kind]
    if want != kind:
        how = "--vae gives latents" if kind == "latents" else "the data are pixels (no --vae)"
        raise EmfBenchError(f"probe preset {name} is sized for {want}, but {how}; use "
                            f"--size {' or '.join(fitting)}")
    if channels is not None and want_channels is not None and channels != want_channels:
        raise EmfBenchError(f"probe preset {name} expects {want_channels}-channel {want}; the "
                            f"data have {channels} channels (use --size "
                            f"{' or '.join(n for n in fitting if n != name)})")
