"""Probe training: budgets, checkpoints, resumption, divergence, mismatches."""

import json

import pytest
import torch
from safetensors.torch import load_file

from emf_bench.errors import EmfBenchError
from emf_bench.probe import trainer as trainer_module
from emf_bench.probe.checkpoint import load_checkpoint
from emf_bench.probe.trainer import ProbeTrainer, TrainConfig, parse_budget
from emf_bench.text.registry import EncoderRegistry
from emf_bench.world import World

CARDS = EncoderRegistry.load([])


def config(**kw):
    base = dict(size="tiny", budget="12steps", batch_size=8, train_size=64, checkpoint_every=4,
                log_every=1, warmup_steps=2, warm_start=0.25)
    return TrainConfig(**{**base, **kw})


def trainer(tmp_path, cache, name="probe", encoder="class-label", **kw):
    return ProbeTrainer(CARDS.card(encoder), config(**kw), World(), tmp_path / name, cache)


def log(folder):
    import csv

    with open(folder / "train_log.csv") as fh:
        return [(int(r["step"]), r["phase"], float(r["loss"])) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("text, parsed", [("90s", ("seconds", 90.0)), ("4m", ("seconds", 240.0)),
                                          ("1.5h", ("seconds", 5400.0)),
                                          ("3000steps", ("steps", 3000.0)),
                                          ("1 step", ("steps", 1.0))])
def test_budgets_parse(text, parsed):
    assert parse_budget(text) == parsed


@pytest.mark.parametrize("text", ["4 minutes", "", "-3m", "0s", "steps", "0steps"])
def test_bad_budgets_are_one_clear_error(text):
    with pytest.raises(EmfBenchError, match="budget"):
        parse_budget(text)


@pytest.mark.parametrize("field, value, message", [
    ("lr", float("nan"), "learning rate"), ("lr", -1.0, "learning rate"),
    ("final_lr", 2.0, "final_lr"), ("grad_clip", 0.0, "grad_clip"),
    ("checkpoint_every", 0, "checkpoint interval"), ("log_every", 0, "log interval"),
    ("warmup_steps", -1, "warmup")])
def test_bad_training_numbers_are_one_clear_error(field, value, message):
    with pytest.raises(EmfBenchError, match=message):
        TrainConfig(**{field: value})


def test_a_killed_and_resumed_run_continues_the_same_curve(tmp_path, cache):
    whole = trainer(tmp_path, cache, "whole").train()
    assert whole["step"] == 12 and whole["finished"]

    killed = trainer(tmp_path, cache, "killed")
    stopped = killed.train(stop_after=6)  # as if killed after step 6; last checkpoint: step 4
    assert stopped["stopped"] and json.loads((tmp_path / "killed/latest.json").read_text()
                                             )["step"] == 4
    with pytest.raises(EmfBenchError, match="--resume"):
        trainer(tmp_path, cache, "killed").train()
    resumed = trainer(tmp_path, cache, "killed").train(resume=True)
    assert resumed["step"] == 12

    a, b = log(tmp_path / "whole"), log(tmp_path / "killed")
    assert [row[:2] for row in a] == [row[:2] for row in b]  # same steps, same phases
    assert {row[1] for row in a} == {"flow-matching", "meanflow"}  # warm start, then MeanFlow
    torch.testing.assert_close(torch.tensor([r[2] for r in b]), torch.tensor([r[2] for r in a]))
    for name in ("ema", "model"):
        ta = load_file(str(tmp_path / f"whole/checkpoints/step-0000012/{name}.safetensors"))
        tb = load_file(str(tmp_path / f"killed/checkpoints/step-0000012/{name}.safetensors"))
        for key in ta:
            torch.testing.assert_close(tb[key], ta[key])
    # A finished probe is reused, not retrained.
    again = trainer(tmp_path, cache, "whole").train()
    assert again["reused"] and again["step"] == 12
    state = load_checkpoint(tmp_path / "whole").state
    assert state["encoder"]["name"] == "class-label" and state["train"]["objective"] == "meanflow"
    assert state["hardware"]["precision"] in ("float32", "bfloat16")  # decided at run time
    assert state["hardware"]["threads"] >= 1 and state["hardware"]["device"] == "cpu"


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, cache,
                                                                        monkeypatch):
    real, calls = trainer_module.probe_loss, []

    def poisoned(*args, **kwargs):
        loss, info = real(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan"), info) if len(calls) == 7 else (loss, info)

    monkeypatch.setattr(trainer_module, "probe_loss", poisoned)
    with pytest.raises(EmfBenchError, match=r"loss is nan at step 7; the last good checkpoint "
                                            r"\(step 4\) is kept"):
        trainer(tmp_path, cache).train()
    kept = load_checkpoint(tmp_path / "probe")
    assert kept.state["step"] == 4 and all(torch.isfinite(v).all() for v in kept.ema.values())


def test_mismatched_encoder_or_settings_never_overwrite_a_checkpoint(tmp_path, cache):
    trainer(tmp_path, cache, budget="4steps").train()
    before = (tmp_path / "probe/latest.json").read_text()
    with pytest.raises(EmfBenchError, match="another encoder"):
        trainer(tmp_path, cache, encoder="bag-of-words", budget="4steps").train()
    with pytest.raises(EmfBenchError, match=r"other training settings \(lr\)"):
        trainer(tmp_path, cache, budget="8steps", lr=1e-3).train(resume=True)
    assert (tmp_path / "probe/latest.json").read_text() == before
    # A longer budget with the same settings resumes; --overwrite starts over.
    assert trainer(tmp_path, cache, budget="8steps").train(resume=True)["step"] == 8
    assert trainer(tmp_path, cache, budget="4steps").train(overwrite=True)["step"] == 4


def test_checkpoints_from_before_the_tangent_option_resume_as_sample_tangent():
    legacy = {k: v for k, v in TrainConfig().to_dict().items() if k != "tangent"}
    assert TrainConfig.from_dict(legacy).tangent == "sample"
    assert TrainConfig().tangent == "model"  # new probes take the JVP along their own velocity
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()



def test_a_resumed_probe_keeps_its_network_when_the_preset_changes(tmp_path, cache, monkeypatch):
    from emf_bench.probe import presets as presets_module

    trainer(tmp_path, cache, budget="4steps").train()
    tiny = presets_module.PROBE_PRESETS["tiny"]
    monkeypatch.setitem(presets_module.PROBE_PRESETS, "tiny",
                        lambda **kw: tiny(unet_attention=True, **kw))
    resumed = trainer(tmp_path, cache, budget="8steps").train(resume=True)
    assert resumed["step"] == 8 and resumed["probe"]["unet_attention"] is False
    fresh = trainer(tmp_path, cache, "fresh", budget="4steps").train()
    assert fresh["probe"]["unet_attention"] is True


def test_a_renamed_preset_that_builds_the_same_network_resumes(tmp_path, cache, monkeypatch):
    # (as the long study's run dirs from when `cpu` had the layout maps `cpu-layout` has now)
    from emf_bench.probe import presets as presets_module

    trainer(tmp_path, cache, budget="4steps").train()
    monkeypatch.setitem(presets_module.PROBE_PRESETS, "tiny-renamed",
                        presets_module.PROBE_PRESETS["tiny"])
    resumed = trainer(tmp_path, cache, budget="8steps", size="tiny-renamed").train(resume=True)
    assert resumed["step"] == 8
    refusal = r"other training settings \(size\): it was trained with size='tiny-renamed', this "
    with pytest.raises(EmfBenchError, match=refusal + r"run asks for size='cpu'"):
        trainer(tmp_path, cache, budget="12steps", size="cpu").train(resume=True)

def test_corrupt_or_missing_checkpoints_are_named(tmp_path, cache):
    trainer(tmp_path, cache, budget="4steps").train()
    folder = tmp_path / "probe/checkpoints/step-0000004"
    (folder / "ema.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(EmfBenchError, match=r"corrupt checkpoint file .*ema.safetensors"):
        load_checkpoint(tmp_path / "probe")
    (folder / "state.json").write_text("{")
    with pytest.raises(EmfBenchError, match="corrupt checkpoint state"):
        load_checkpoint(folder)
    with pytest.raises(EmfBenchError, match="neither a probe folder"):
        load_checkpoint(tmp_path)


def test_flow_matching_probe_initialises_a_meanflow_probe(tmp_path, cache):
    fm = trainer(tmp_path, cache, "fm", objective="flow-matching", budget="4steps").train()
    assert fm["probe"]["time"] == "single"
    mf = ProbeTrainer(CARDS.card("class-label"), config(budget="4steps"), World(),
                      tmp_path / "mf", cache, init_from=tmp_path / "fm")
    assert mf.phase(0.0) == ("meanflow", 0.0)  # no flow-matching warm start after --init-from
    mf.train()
    rows = log(tmp_path / "mf")
    assert {r[1] for r in rows} == {"meanflow"}
    other = ProbeTrainer(CARDS.card("bag-of-words"), config(budget="4steps"), World(),
                         tmp_path / "bow", cache, init_from=tmp_path / "fm")
    with pytest.raises(EmfBenchError, match="another encoder"):
        other.train()


def test_empty_training_set_and_bad_settings(tmp_path, cache):
    with pytest.raises(EmfBenchError, match="at least 1"):
        config(train_size=0)
    with pytest.raises(EmfBenchError, match="warm_start"):
        config(warm_start=1.0)
    with pytest.raises(EmfBenchError, match="unknown objective"):
        config(objective="diffusion")


def test_dimensions_that_never_varied_in_training_are_dropped():
    from emf_bench.probe.data import FeatureStats, make_conditions

    train = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])  # dims 1 and 2 never vary
    stats = FeatureStats.fit(train, None)
    out = make_conditions(torch.tensor([[2.0, 0.7, 5.0], [3.0, 0.0, 2.0]]), None, stats).pooled
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_trained_in_guidance_is_named_wherever_the_probe_samples(tmp_path, cache):
    from emf_bench.generators.probe import ProbeGenerator
    from emf_bench.reporting.collect import probe_table, probes

    run = tmp_path / "run"
    ProbeTrainer(CARDS.card("class-label"), config(budget="4steps"), World(),
                 run / "probes/class-label/meanflow", cache).train()
    ProbeTrainer(CARDS.card("class-label"), config(budget="2steps", objective="flow-matching"),
                 World(), run / "probes/class-label/flow-matching", cache).train()
    for objective, trained, modes in (("meanflow", 1.5, ("trained-in 1.5",
                                                          "trained-in 1.5 + cfg-batched")),
                                      ("flow-matching", 1.0, ("none", "cfg-batched"))):
        generator = ProbeGenerator(run / f"probes/class-label/{objective}", cache=cache)
        assert generator.describe()["trained_guidance"] == trained
        for guidance, mode in zip((1.0, 2.0), modes, strict=True):
            generator.generate(["a red circle"], 1, [0], guidance)
            assert generator.last_record.guidance_mode == mode
    table = probe_table(probes(run)).set_index("objective")
    assert table.loc["meanflow", "trained_guidance"] == 1.5
    assert table.loc["flow-matching", "trained_guidance"] == 1.0


def test_a_flow_matching_probe_resumes_whatever_the_meanflow_only_settings(tmp_path, cache):
    fm = dict(objective="flow-matching")
    trainer(tmp_path, cache, "fm", budget="2steps", train_guidance=1.0, **fm).train()
    resumed = trainer(tmp_path, cache, "fm", budget="4steps", train_guidance=2.0,
                      warm_start=0.5, tangent="sample", **fm).train(resume=True)
    assert resumed["step"] == 4
    trainer(tmp_path, cache, "mf", budget="2steps", train_guidance=1.0).train()
    with pytest.raises(EmfBenchError, match=r"other training settings \(train_guidance\)"):
        trainer(tmp_path, cache, "mf", budget="4steps", train_guidance=2.0).train(resume=True)


def test_a_curriculum_trains_its_first_share_on_its_tasks_alone(tmp_path, cache, monkeypatch):
    from emf_bench.probe import data

    drawn = []
    batch = data.ProbeDataset.batch

    def recording(self, index):
        drawn.append({self.tasks[i] for i in index.tolist()})
        return batch(self, index)

    monkeypatch.setattr(data.ProbeDataset, "batch", recording)
    summary = trainer(tmp_path, cache, first_tasks=["position"], first_share=0.5).train()
    assert summary["step"] == 12 and summary["train"]["first_tasks"] == ("position",)
    assert all(tasks == {"position"} for tasks in drawn[:6])  # steps 1-6: position alone
    assert set().union(*drawn[6:]) - {"position"}  # then the whole mix
    # a resumed probe must keep its curriculum
    with pytest.raises(EmfBenchError, match=r"other training settings \(first_share, "
                       r"first_tasks\): it was trained with first_share=0.5, "
                       r"first_tasks=\('position',\), this run asks for first_share=0.0, "
                       r"first_tasks=\(\)"):
        trainer(tmp_path, cache, budget="14steps").train(resume=True)


@pytest.mark.parametrize("tasks, share, message", [
    (("positon",), 0.5, "unknown training task 'positon'; did you mean 'position'"),
    (("position",), 0.0, "a curriculum needs both its tasks and a share"),
    ((), 0.3, "a curriculum needs both its tasks and a share"),
    (("position",), 1.0, "a curriculum needs both its tasks and a share"),
])
def test_bad_curricula_are_one_clear_error(tasks, share, message):
    with pytest.raises(EmfBenchError, match=message):
        config(first_tasks=tasks, first_share=share)


@pytest.mark.parametrize("n, share", [(32, 0.1), (32, 0.25), (7, 0.5), (8, 0.0), (5, 0.999)])
def test_a_share_of_rows_is_drawn_as_a_count_with_the_exact_expectation(n, share):
    """r != t rows and dropped conditions: floor or ceil of share * n rows (two sub-batch sizes
    at most, so oneDNN reuses its kernels), share * n of them on average."""
    from emf_bench.probe.schedules import TimeSchedule, chosen

    g = torch.Generator().manual_seed(0)
    counts = [int(chosen(n, share, g).sum()) for _ in range(4000)]
    assert set(counts) <= {int(share * n), int(share * n) + 1}
    assert abs(sum(counts) / len(counts) - share * n) < 0.05
    t, r = TimeSchedule.named("meanflow").sample(32, 0.0, g)
    assert int((r < t).sum()) in (8, 9) and (r <= t).all()  # 25% of 32
