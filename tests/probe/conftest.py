"""Probe fixtures: the world's training scenes as an imagefolder, and tiny autoencoders built
from configs (no download) of both kinds a probe can learn in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def world_folder(tmp_path_factory) -> Path:
    """The first 64 training scenes of the default world (seed 0) with their captions."""
    from emf_bench.evaluation.world_export import export_training_set
    from emf_bench.world import World, WorldConfig

    out = tmp_path_factory.mktemp("world-imagefolder")
    export_training_set(World(WorldConfig()), out, 64, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_vaes(tmp_path_factory) -> dict[str, Path]:
    """A 4-channel AutoencoderKL (f2) and an 8-channel AutoencoderDC (f2), randomly
    initialised, saved as local folders (the KL one inside a pipeline-style vae/ folder)."""
    import torch
    from diffusers import AutoencoderDC, AutoencoderKL

    root = tmp_path_factory.mktemp("tiny-vaes")
    torch.manual_seed(0)
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                  latent_channels=4, norm_num_groups=4, sample_size=16,
                  shift_factor=0.1).save_pretrained(root / "kl-pipeline" / "vae")
    AutoencoderDC(latent_channels=8, attention_head_dim=4,
                  encoder_block_types=("ResBlock",) * 2, decoder_block_types=("ResBlock",) * 2,
                  encoder_block_out_channels=(8, 16), decoder_block_out_channels=(8, 16),
                  encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
                  encoder_qkv_multiscales=((), ()), decoder_qkv_multiscales=((), ()),
                  scaling_factor=0.5).save_pretrained(root / "dc")
    return {"kl": root / "kl-pipeline", "dc": root / "dc"}
