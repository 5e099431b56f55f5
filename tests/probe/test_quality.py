"""What a CPU probe learns in four minutes on two cores (slow; `.ci/run` runs it).

The budget is the steps four minutes bought a MeanFlow probe on the reference host
(BENCHMARKS.md, "Probe training", 2 cores: about 1480, its flow-matching warm start included):
1450 steps, the same for the flow-matching probe (the same budget in steps; four minutes would
buy it about 1970, which at 1 step still scores near 0). A time budget would measure the host
instead: on a host at 58% of that speed the same test trained 55% of the steps and failed
single_object (0.40) with nothing changed in the code. On such a host it takes longer, not
scores lower.

The issue's targets for the class-label MeanFlow probe at 1 step: 0.5 on world single_object
and colors, ahead of the flow-matching probe of the same budget, and within 0.1 of its own
4-step score. Measured with the default recipe (BENCHMARKS.md): the first two hold in every
run (with guidance trained in, single_object 0.73 and 0.85, colors 0.74 and 0.81 at 16 images
per prompt); the 1-to-4-step gap is about 0.14 (eighteen seeds, six on the CPU and twelve on a
GPU: 0.11 to 0.18; bench/gap_seeds.py), so the third is not met yet. This test asserts the
first two as stated and the gap with room for the spread of a 4-image score (0.25: a probe
whose one step broke scores 0.3 or more below its four; CI runs of the default recipe measured
0.15 to 0.21 at 4 images per prompt, so 0.2 failed a sound probe), and prints what this run
reached.
"""

import pytest

from emf_bench.evaluation.world_scores import world_geneval
from emf_bench.generators.probe import ProbeGenerator
from emf_bench.probe.trainer import ProbeTrainer, TrainConfig
from emf_bench.text.registry import EncoderRegistry
from emf_bench.world import World

BUDGET = "1450steps"  # what 4 minutes gave a MeanFlow probe on the reference host (docstring)


@pytest.mark.slow
def test_meanflow_probe_generates_in_one_step_and_flow_matching_does_not(tmp_path, cache):
    world = World()
    card = EncoderRegistry.load([]).card("class-label")
    scores = {}
    for objective in ("meanflow", "flow-matching"):
        folder = tmp_path / objective
        ProbeTrainer(card, TrainConfig(objective=objective, budget=BUDGET), world, folder,
                     cache).train()
        generator = ProbeGenerator(folder, cache=cache)
        overall = world_geneval(generator, world, (1, 4), guidance=1.0)
        # single_object has 3 prompts: 32 images each keep a 0.65 probe's sampling error near
        # 0.05 (16 gave 0.07, and six CI runs ranged 0.54 to 0.79 against the bar of 0.5)
        focus = world_geneval(generator, world, (1,), per_prompt=32, guidance=1.0,
                              tasks=("single_object", "colors"))
        scores[objective] = {k: v["overall"] for k, v in overall.items()}
        scores[objective].update(focus[1]["tasks"])
    print("\nworld-GenEval, no guidance (world-exact detector):", scores)
    mf, fm = scores["meanflow"], scores["flow-matching"]
    assert mf[1] >= fm[1] + 0.1  # one step: MeanFlow generates, flow matching does not
    assert mf["single_object"] >= 0.5 and mf["colors"] >= 0.5
    assert mf[4] >= mf[1] - 0.05  # more steps never make a MeanFlow probe much worse
    assert mf[4] - mf[1] <= 0.25  # and one step is not far behind four
