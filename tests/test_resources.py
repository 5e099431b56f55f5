import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from emf_bench.errors import EmfBenchError
from emf_bench.resources import cards_dir, paper_reference, read_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_paper_reference_holds_the_published_values():
    ref = paper_reference()
    assert ref["encoders"]["blip3o-next"] == {"discriminability": 0.734, "disentanglement": 0.999}
    assert ref["encoders"]["t5-v1_1-xxl"]["disentanglement"] == 0.893
    emf_1 = next(r for r in ref["geneval"]["results"]
                 if r["model"] == "EMF (MeanFlow)" and r["steps"] == 1)
    assert dict(zip(ref["geneval"]["tasks"], emf_1["scores"], strict=True))["overall"] == 0.74
    dpg = {(r["model"], r["steps"]): r["overall"] for r in ref["dpg"]["results"]}
    assert dpg[("EMF (MeanFlow)", 8)] == 81.94


def test_cards_resolve_and_bad_yaml_is_one_clear_error(tmp_path):
    assert (cards_dir("benchmarks") / "paper_reference.yaml").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(EmfBenchError, match=r"cannot read .*bad\.yaml"):
        read_yaml(bad)
    with pytest.raises(EmfBenchError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_the_wheel_ships_the_cards(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("emf_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for card in (ROOT / "benchmarks").glob("*.yaml"):
        assert f"emf_bench/_cards/benchmarks/{card.name}" in names
    assert "emf_bench/cli/app.py" in names
    assert "emf_bench/reporting/templates/report.html.j2" in names  # the report template
