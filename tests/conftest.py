"""Shared fixtures: a tiny analytic task, registered as a plugin, that exercises the pipeline
without heavy physics; GPU tests skipped without a CUDA device."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

PLUGINS = Path(__file__).parent / "plugins"


def _register_blob_plugin() -> None:
    """Make ``tests/plugins/`` an installed plugin without installing anything: a
    distribution's metadata (``*.dist-info`` with an ``entry_points.txt`` naming two toy tasks
    in the group ``retroscope.tasks`` and a toy learner in ``retroscope.learners``) in a
    temporary folder on the path, exactly what pip would write. Child processes (Dask
    workers, the CLI) find it through PYTHONPATH."""
    site = Path(tempfile.mkdtemp(prefix="retroscope-plugin-"))
    info = site / "retroscope_blob_test-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: retroscope-blob-test\n"
                                   "Version: 0.0\n")
    (info / "entry_points.txt").write_text("[retroscope.tasks]\n"
                                           "blob-test = blob_task:BlobTask\n"
                                           "blob-mean-test = blob_task:BlobMeanTask\n"
                                           "[retroscope.learners]\n"
                                           "mean-test = mean_learner:LEARNER\n")
    for path in (str(PLUGINS), str(site)):
        sys.path.append(path)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [p for p in (os.environ.get("PYTHONPATH"), str(PLUGINS), str(site)) if p])


_register_blob_plugin()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def blob_task():
    """The toy plugin task, as the registry finds it through its entry point."""
    from retroscope.core.registry import get_task

    return get_task("blob-test")


@pytest.fixture
def unfinished_campaign(blob_task):
    """Make an unfinished campaign of the toy task in a folder, as a run stopped mid-way leaves
    it: simulated, then one shard marked not done in the manifest. Returns the folder."""
    from retroscope.compute.campaign import generate
    from retroscope.data.shards import Manifest

    def make(root: Path, n: int = 20, shard_size: int = 10, seed: int = 0,
             shard: int = 1) -> Path:
        generate(blob_task, root, n, shard_size=shard_size, seed=seed, progress=False)
        manifest = Manifest.load(root)
        manifest.shards[shard].done = False
        manifest.save(root)
        return root

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module (small FFTs and tiny networks are slower on two, and
    campaign workers run on one); a folder's conftest makes it autouse."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
