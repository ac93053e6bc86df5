"""The TDSE tests run their small FFTs on one thread (per module, before its fixtures): two threads on small grids are slower,
and the timings and results then match a campaign's one-thread workers."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
