"""BLIP3o-NEXT's image-token view: captions/s one at a time against batched, in one run, on a
small Qwen3-style model built from a config (random weights: speed only), and the projected time
of a 118k-caption COCO pool.

    python bench/blip3o_batching.py [--texts 64] [--image-tokens 64] [--batch 32] \
        [--hidden 256] [--layers 4] [--device cpu]

Prints a markdown table for BENCHMARKS.md. On a GPU, `--hidden 2048 --layers 36 --heads 16
--kv-heads 8 --image-tokens 729 --dtype bfloat16` is the 3B model's shape.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

CHAT = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def build(root: Path, args) -> Path:
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ("a an the photo of red green blue yellow circle square triangle left right above "
             "below two three four one and with please generate image based on following "
             "caption : you are helpful assistant .").split()
    special = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>",
               "<im_start>", "<im_end>", "<S0>"]
    images = [f"<IMG_{i}>" for i in range(args.vocab - len(special) - len(words))]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(special + words + images))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation()])
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=special[4:] + images)
    tokenizer.chat_template = CHAT
    tokenizer.save_pretrained(root)
    config = tf.Qwen3Config(vocab_size=len(vocab), hidden_size=args.hidden,
                            intermediate_size=3 * args.hidden, num_hidden_layers=args.layers,
                            num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                            head_dim=args.hidden // args.heads, max_position_embeddings=4096,
                            pad_token_id=0)
    tf.Qwen3ForCausalLM(config).save_pretrained(root)
    return root


def rate(card, texts: list[str], batch: int, device: str) -> float:
    from emf_bench.text.registry import load_encoder

    encoder = load_encoder(card, device=device, batch_size=batch)
    encoder.encode(texts[:batch])  # warm-up
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--image-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from emf_bench.text.card import EncoderCard

    torch.manual_seed(0)
    root = build(Path(tempfile.mkdtemp(prefix="emf-blip3o-bench-")), args)
    card = EncoderCard(name="bench-blip3o", backend="blip3o-next", model=str(root),
                       dtype=args.dtype, options={"image_tokens": args.image_tokens})
    shapes = ["circle", "square", "triangle"]
    colors = ["red", "green", "blue", "yellow"]
    texts = [f"a photo of {n} {c} {s}" + (" left of a blue square" if i % 3 == 0 else "")
             for i, (n, c, s) in enumerate((n, c, s) for n in ("one", "two", "three", "four")
                                           for c in colors for s in shapes)][:args.texts]
    single = rate(card, texts, 1, args.device)
    batched = rate(card, texts, args.batch, args.device)
    pool = 118_287
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"Qwen3-style model: hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, "
          f"{args.dtype}; {args.image_tokens} image tokens a caption, {len(texts)} captions; "
          f"{args.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads); commit {commit}\n")
    print("| captions a batch | captions/s | x one at a time | 118k COCO pool, one device |")
    print("|---|---|---|---|")
    for label, value in (("1", single), (str(args.batch), batched)):
        print(f"| {label} | {value:.2f} | {value / single:.1f}x | {pool / value / 3600:.1f} h |")


if __name__ == "__main__":
    main()
