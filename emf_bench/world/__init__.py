"""The synthetic shapes world: scenes, captions, suites, an exact detector and an oracle.

Everything the study needs with exact ground truth on a laptop CPU: the probe learns the world's
scenes from captions, and world-GenEval / world-DPG score generated images with the exact
detector and oracle instead of Mask2Former and mPLUG.
"""

from emf_bench.world.config import WorldConfig
from emf_bench.world.core import (
    DENSE_TASK,
    GENEVAL_TASKS,
    CatalogueEntry,
    DenseSuite,
    TrainingExample,
    TrainingSet,
    World,
)
from emf_bench.world.detector import ExactDetector
from emf_bench.world.grammar import CaptionParseError, Phrasing, parse, realize
from emf_bench.world.meaning import Meaning, ObjectGroup, Relation
from emf_bench.world.oracle import OracleVQA
from emf_bench.world.scene import Scene, SceneObject, render, sample_scene

__all__ = [
    "DENSE_TASK", "GENEVAL_TASKS", "CaptionParseError", "CatalogueEntry", "DenseSuite",
    "ExactDetector", "Meaning", "ObjectGroup", "OracleVQA", "Phrasing", "Relation", "Scene",
    "SceneObject", "TrainingExample", "TrainingSet", "World", "WorldConfig", "parse", "realize",
    "render", "sample_scene",
]
