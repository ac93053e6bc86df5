"""The TDSE tests run their small FFTs on one thread (per module, before its fixtures): two
threads on small grids are slower, and the timings and results then match a campaign's
one-thread workers."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    yield
