"""Forward workers per device and the torch threads each one gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from servicegrid.models import forward_workers_for, set_cpu_threads, usable_cores
from servicegrid.models.threads import MAX_AUTO_CPU_WORKERS


@pytest.fixture
def torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpu_gets_a_worker_per_core_up_to_the_cap_and_a_gpu_one() -> None:
    assert forward_workers_for("cpu") == min(usable_cores(), MAX_AUTO_CPU_WORKERS)
    assert forward_workers_for("cuda") == 1
    assert forward_workers_for("cuda:1") == 1


def test_a_configured_count_wins() -> None:
    assert forward_workers_for("cpu", 3) == 3
    assert forward_workers_for("cuda", 2) == 2
    with pytest.raises(ValueError, match="forward workers"):
        forward_workers_for("cpu", 0)


@pytest.mark.usefixtures("torch_threads")
def test_the_cores_are_shared_out_between_workers() -> None:
    cores = usable_cores()
    assert set_cpu_threads(1) == cores
    assert torch.get_num_threads() == cores
    assert set_cpu_threads(cores) == 1
    assert torch.get_num_threads() == 1
    assert set_cpu_threads(cores * 4) == 1  # never below one thread
