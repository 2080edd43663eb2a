"""The seam between the batching engine and a model: four blocking calls, no torch here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["ModelAdapter"]

I_contra = TypeVar("I_contra", contravariant=True)
P = TypeVar("P")
R = TypeVar("R")
O_co = TypeVar("O_co", covariant=True)


class ModelAdapter(Protocol[I_contra, P, R, O_co]):
    """A model behind the engine: item ``I``, prepared batch ``P``, raw output ``R``, result ``O``.

    ``preprocess`` runs on the engine's preprocess thread, ``forward`` and
    ``postprocess`` on its forward thread, so tokenization of the next batch
    overlaps the forward pass of the current one: ``preprocess`` may run while
    ``forward`` does, but no method runs concurrently with itself. ``cost``
    runs on the event loop at submit time and must stay cheap (an estimate,
    not a tokenizer pass).
    """

    def cost(self, item: I_contra) -> int:
        """Size of one item (e.g. tokens) for the token budget and the length sort; >= 0."""
        ...

    def preprocess(self, items: Sequence[I_contra]) -> P:
        """CPU work for one batch (tokenization); blocking."""
        ...

    def forward(self, prepared: P) -> R:
        """The model's pass over one prepared batch; blocking."""
        ...

    def postprocess(self, raw: R, items: Sequence[I_contra]) -> Sequence[O_co]:
        """One result per item of ``items``, in the same order; blocking."""
        ...
