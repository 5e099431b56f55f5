from __future__ import annotations

import os
from pathlib import Path

import pytest

# Official benchmark files live beside the project (never copied into it); tests that read them
# skip where they are absent.
SHARED_DATA = Path(os.environ.get("EMF_BENCH_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMF_BENCH_QUIET", "1")


@pytest.fixture(scope="session")
def geneval_metadata_file() -> Path:
    path = SHARED_DATA / "geneval" / "evaluation_metadata.jsonl"
    if not path.exists():
        pytest.skip(f"official GenEval metadata not found at {path}")
    return path
