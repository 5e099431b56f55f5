"""`eval --pipeline` end to end on tiny diffusers pipelines built offline from configs: a UNet
pipeline of the Stable Diffusion kind and a flow-matching transformer pipeline (SANA, which EMF
builds on), at 1, 2 and 4 steps, on world-GenEval and on a part of GenEval's own metadata."""

import importlib.util
import json

import pytest
import torch
from conftest import save_tokenizer

from emf_bench.cli import main

diffusers = pytest.importorskip("diffusers")


def _tokenizer(path, max_length=None):
    import transformers as tf

    vocab = save_tokenizer(path)
    if max_length:  # the SD pipeline pads every prompt to model_max_length
        config = json.loads((path / "tokenizer_config.json").read_text())
        config["model_max_length"] = max_length
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    return tf.PreTrainedTokenizerFast.from_pretrained(path), vocab


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    import transformers as tf

    root = tmp_path_factory.mktemp("pipelines")
    torch.manual_seed(0)
    tokenizer, vocab = _tokenizer(root / "clip-tokenizer", 77)
    sd = diffusers.StableDiffusionPipeline(
        vae=diffusers.AutoencoderKL(
            block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            norm_num_groups=2),
        text_encoder=tf.CLIPTextModel(tf.CLIPTextConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
            eos_token_id=3)),
        tokenizer=tokenizer,
        unet=diffusers.UNet2DConditionModel(
            block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
            out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
            norm_num_groups=2),
        scheduler=diffusers.EulerDiscreteScheduler(steps_offset=1), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    sd.save_pretrained(root / "sd")

    tokenizer, vocab = _tokenizer(root / "gemma-tokenizer")
    sana = diffusers.SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=tf.Gemma2Model(tf.Gemma2Config(
            head_dim=16, hidden_size=8, intermediate_size=64, max_position_embeddings=512,
            num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
            vocab_size=vocab, pad_token_id=0, attn_implementation="eager")),
        vae=diffusers.AutoencoderDC(
            in_channels=3, latent_channels=4, attention_head_dim=2,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
            encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1), decoder_layers_per_block=[1, 1],
            downsample_block_type="conv", upsample_block_type="interpolate",
            decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407),
        transformer=diffusers.SanaTransformer2DModel(
            patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2,
            attention_head_dim=4, num_cross_attention_heads=2, cross_attention_head_dim=4,
            cross_attention_dim=8, caption_channels=8, sample_size=16),
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0))
    sana.save_pretrained(root / "sana")
    return root


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


CPU = ["--device", "cpu", "--pipeline-dtype", "float32", "--pipeline-size", "32"]
SANA_ARGS = ["--pipeline-arg", "use_resolution_binning=false", "--pipeline-arg",
             "complex_human_instruction=null", "--pipeline-arg", "max_sequence_length=16"]


def test_a_unet_pipeline_at_one_two_and_four_steps(capsys, tmp_path, pipelines):
    code, _, err = run(capsys, "eval", "--pipeline", pipelines / "sd", "--name", "tiny-sd",
                         "--steps", "1,2,4", "--limit", "3", "--pipeline-scheduler",
                         "EulerAncestralDiscreteScheduler", *CPU, "--run-dir", tmp_path)
    assert code == 0, err
    folder = tmp_path / "evals/tiny-sd/world-geneval.first3"
    for k in (1, 2, 4):
        summary = json.loads((folder / f"steps-{k}/summary.json").read_text())
        assert summary["generator"]["scheduler"] == "EulerAncestralDiscreteScheduler"
        assert summary["subset"]["prompts"] == 3 and summary["scorer"]["official"] is False
        images = sorted((folder / f"steps-{k}/images").glob("*/samples/*.png"))
        assert len(images) == 3 * 4
    # the same command again reuses every row: the pipeline is the same by content
    code, _, err = run(capsys, "eval", "--pipeline", pipelines / "sd", "--name", "tiny-sd",
                       "--steps", "1,2,4", "--limit", "3", "--pipeline-scheduler",
                       "EulerAncestralDiscreteScheduler", *CPU, "--run-dir", tmp_path)
    assert code == 0 and "12 row(s) reused (same content), 0 computed" in err


def test_a_flow_matching_pipeline_on_genevals_own_metadata(capsys, tmp_path, pipelines,
                                                           tiny_backends,
                                                           geneval_metadata_file):
    code, out, err = run(capsys, "eval", "--pipeline", pipelines / "sana", "--name", "tiny-sana",
                         "--benchmark", "geneval", "--geneval-metadata", geneval_metadata_file,
                         "--tags", "counting", "--limit", "2", "--images-per-prompt", "2",
                         "--steps", "1,2", "--detector", "mask2former-hf", "--detector-model",
                         tiny_backends["mask2former"], "--color-model", tiny_backends["clip"],
                         *SANA_ARGS, *CPU, "--run-dir", tmp_path)
    assert code == 0, err
    assert "NOT the official backend" in " ".join(out.split())
    summary = json.loads((tmp_path / "evals/tiny-sana/geneval.counting.first2/steps-2/"
                          "summary.json").read_text())
    assert summary["generator"]["call_kwargs"] == {
        "use_resolution_binning": False, "complex_human_instruction": None,
        "max_sequence_length": 16}
    assert summary["generator"]["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert set(summary["tasks"]) == {"counting"}


@pytest.mark.parametrize("args, message", [
    (["--pipeline-scheduler", "EulerScheduler"], "unknown diffusers scheduler 'EulerScheduler'"),
    (["--pipeline-arg", "timesteps"], "expected KEY=VALUE"),
    (["--pipeline-arg", "not_an_option=3"], "unknown call option of tiny-sd"),
])
def test_pipeline_options_it_cannot_take_are_one_line(capsys, tmp_path, pipelines, args,
                                                      message):
    code, _, err = run(capsys, "eval", "--pipeline", pipelines / "sd", "--name", "tiny-sd",
                       "--steps", "1", "--limit", "1", *CPU, *args, "--run-dir", tmp_path)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_diffusers_installs_without_torchvision_and_cpu_torch_stays():
    assert importlib.util.find_spec("torchvision") is None
    assert torch.__version__.startswith("2.13.0")
