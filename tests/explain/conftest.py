"""The explanation tests run their tiny networks on one thread (per module, before its
fixtures): captum's many small forward passes are slower on two."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
