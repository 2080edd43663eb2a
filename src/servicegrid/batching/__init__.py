"""Dynamic batching: per-item async submits merged into model batches, model-agnostic.

``BatchEngine`` queues items (bounded), forms batches bounded by count and by a
padded token budget, and runs a ``ModelAdapter``'s blocking ``preprocess`` and
``forward``/``postprocess`` on two threads so they overlap. Imports no model
runtime.
"""

from servicegrid.batching.adapter import ModelAdapter
from servicegrid.batching.engine import LOOKAHEAD, RETRY_AFTER, BatchEngine, EngineStats
from servicegrid.batching.waiting import fit_count, padded_cost

__all__ = [
    "LOOKAHEAD",
    "RETRY_AFTER",
    "BatchEngine",
    "EngineStats",
    "ModelAdapter",
    "fit_count",
    "padded_cost",
]
