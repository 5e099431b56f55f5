"""Where the official benchmark files live for conformance tests (never copied into the repo)."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("EMF_BENCH_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))
