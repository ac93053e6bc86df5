"""The explanation tests run their tiny networks on one thread (per module, before its
fixtures): captum's many small forward passes are slower on two."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_torch_thread):
    yield
