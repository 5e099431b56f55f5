"""emf-bench: will this text encoder work for one-step (MeanFlow) text-to-image generation?"""

from emf_bench.errors import EmfBenchError

__version__ = "0.1.0"

__all__ = ["EmfBenchError", "__version__"]
