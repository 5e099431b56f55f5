from collections import Counter

import numpy as np
import pytest
from PIL import Image

from emf_bench.errors import EmfBenchError
from emf_bench.spatial import box_from_mask
from emf_bench.world import World, WorldConfig
from emf_bench.world.palette import COLORS
from emf_bench.world.scene import object_mask

EXTENDED = WorldConfig(canvas=48, shapes=("circle", "square", "triangle", "diamond", "cross",
                                          "ring"), colors=tuple(COLORS))


def _recovery(world, n_scenes, size=None, noise=0.0, seed=0):
    """(objects recovered exactly, objects, extra detections) over training scenes."""
    size = size or world.config.canvas
    detector = world.detector()
    rng = np.random.default_rng(seed)
    found = total = extra = 0
    for example in world.training_set(n_scenes, seed=seed):
        image = world.render(example.scene, size).astype(np.float64)
        if noise:
            image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255)
        detections = [d for d in detector.detect(image.astype(np.uint8)) if d.score > 0.3]
        truth = Counter((o.shape, o.color, box_from_mask(object_mask(o, size)))
                        for o in example.scene.objects)
        got = Counter((d.label, d.color, d.box) for d in detections)
        found += sum((truth & got).values())
        total += sum(truth.values())
        extra += max(len(detections) - len(example.scene.objects), 0)
    return found, total, extra


@pytest.mark.parametrize("config, n", [(WorldConfig(), 2000), (EXTENDED, 600)])
def test_clean_renders_recover_every_object_with_its_exact_box(config, n):
    found, total, extra = _recovery(World(config), n)
    assert total > n  # multi-object scenes are really in there
    assert found == total and extra == 0


def test_clean_renders_at_viewing_size_recover_every_object():
    found, total, extra = _recovery(World(), 300, size=128, seed=1)
    assert found == total and extra == 0


@pytest.mark.parametrize("config", [WorldConfig(), WorldConfig(colors=tuple(COLORS)), EXTENDED])
def test_mild_noise_keeps_recovery_at_or_above_99_percent(config):
    world = World(config)
    detector = world.detector()
    rng = np.random.default_rng(2)
    hits = total = extra = 0
    for example in world.training_set(500, seed=2):
        image = world.render(example.scene).astype(np.float64)
        noisy = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        detections = [d for d in detector.detect(noisy) if d.score > 0.3]
        truth = Counter((o.shape, o.color) for o in example.scene.objects)
        got = Counter((d.label, d.color) for d in detections)
        hits += sum((truth & got).values())
        total += sum(truth.values())
        extra += sum((got - truth).values())
    assert hits / total >= 0.99
    assert extra / total <= 0.01


def test_scores_are_ious_one_on_clean_renders_of_an_exact_template():
    world = World()
    example = world.training_set(1, seed=5)[0]
    scores = [d.score for d in world.detector().detect(world.render(example.scene))]
    assert len(scores) == len(example.scene.objects)
    assert all(0.9 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("config", [WorldConfig(), WorldConfig(colors=tuple(COLORS))])
def test_garbage_images_give_few_low_scored_detections(config):
    detector = World(config).detector()
    rng = np.random.default_rng(0)
    garbage = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
               rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
               np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8),
               np.full((32, 32, 3), 128, np.uint8),
               np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4, 4, 1))).astype(np.uint8)]
    for image in garbage:
        detections = detector.detect(image)
        assert len(detections) <= 2
        assert all(d.score < 0.9 for d in detections)


def test_detector_accepts_pil_float_gray_and_rgba_images_and_rejects_other_arrays():
    world = World()
    image = world.render(world.training_set(1, seed=9)[0].scene)
    expected = [(d.label, d.color, d.box) for d in world.detector().detect(image)]
    detector = world.detector()
    variants = [Image.fromarray(image), image.astype(np.float32) / 255.0,
                np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])]
    for variant in variants:
        assert [(d.label, d.color, d.box) for d in detector.detect(variant)] == expected
    assert detector.detect(np.full((32, 32), 128, np.uint8)) == []
    with pytest.raises(EmfBenchError, match="expected an RGB image"):
        detector.detect(np.zeros((4, 32, 32, 3)))


def test_detections_carry_full_size_masks_matching_their_boxes():
    world = World()
    image = world.render(world.training_set(1, seed=11)[0].scene, 64)
    for d in world.detector().detect(image):
        assert d.mask.shape == (64, 64)
        assert box_from_mask(d.mask) == d.box
        assert d.to_dict()["label"] == d.label and "mask" not in d.to_dict()
