"""The probe's precision and threads, decided at run time from the hardware."""

import pytest
import torch

from emf_bench.errors import EmfBenchError
from emf_bench.probe import precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512_bf16"}, "bfloat16"), ({"amx_bf16", "amx_tile"}, "bfloat16"),
    ({"avx2", "fma"}, "float32"), (set(), "float32")])
def test_auto_takes_bf16_where_the_cpu_does_it_natively(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    assert precision.resolve_precision("auto", CPU) == expected
    assert precision.resolve_precision("float32", CPU) == "float32"


def test_bf16_on_a_cpu_without_it_names_the_flag_that_falls_back(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    with pytest.raises(EmfBenchError, match=r"--precision bf16: this CPU .* use --precision auto"):
        precision.resolve_precision("bf16", CPU)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    assert precision.resolve_precision("bf16", CPU) == "bfloat16"
    with pytest.raises(EmfBenchError, match="unknown precision 'fp8'"):
        precision.resolve_precision("fp8", CPU)


def test_threads_default_to_the_physical_cores_and_more_are_refused(monkeypatch):
    monkeypatch.setattr(precision, "physical_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert precision.check_threads(None) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this machine share it
    assert precision.check_threads(None) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own limit is kept
    assert precision.check_threads(None) == 1
    assert precision.check_threads(3) == 3
    with pytest.raises(EmfBenchError, match="more than this machine's 4 physical cores"):
        precision.check_threads(5)
    with pytest.raises(EmfBenchError, match="at least 1"):
        precision.check_threads(0)


def test_physical_cores_counts_this_process_cores():
    import os

    cores = precision.physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


def test_the_record_says_how_the_probe_trained(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    record = precision.hardware_record(CPU, "bfloat16", 2)
    assert record["precision"] == "bfloat16" and record["bf16_support"] == "avx512_bf16"
    assert record["threads"] == 2 and record["device"] == "cpu"
    with precision.autocast(CPU, "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast(CPU, "float32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
