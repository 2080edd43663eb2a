"""Dynamic batching: per-item async submits merged into model batches, model-agnostic.

``BatchEngine`` admits a request only if it fits the queue (items and tokens)
and can finish by its deadline at the measured throughput, serves requests
earliest deadline first with each one's items together, forms batches bounded
by count and by a padded token budget, and runs a ``ModelAdapter``'s blocking
``preprocess`` and ``forward``/``postprocess`` on threads so they overlap.
Imports no model runtime.
"""

from servicegrid.batching.adapter import ModelAdapter
from servicegrid.batching.admission import RETRY_AFTER, Reservation
from servicegrid.batching.engine import LOOKAHEAD, BatchEngine
from servicegrid.batching.stats import GOODPUT_WINDOW, EngineStats
from servicegrid.batching.throughput import ThroughputEstimate
from servicegrid.batching.waiting import fit_count, padded_cost

__all__ = [
    "GOODPUT_WINDOW",
    "LOOKAHEAD",
    "RETRY_AFTER",
    "BatchEngine",
    "EngineStats",
    "ModelAdapter",
    "Reservation",
    "ThroughputEstimate",
    "fit_count",
    "padded_cost",
]
