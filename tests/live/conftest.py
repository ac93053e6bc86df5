"""A tiny trained run of the toy plugin task, and its images as a lab would write them."""

import pytest

from retroscope.compute.campaign import generate

TINY = {"base_width": 4, "stem": "small"}


@pytest.fixture(scope="package")
def blob_run(tmp_path_factory, blob_task):
    """(run directory, dataset directory) of a one-epoch network of the blob task."""
    from retroscope.train.config import train_config
    from retroscope.train.fit import train

    root = tmp_path_factory.mktemp("live")
    generate(blob_task, root / "data", 64, shard_size=32, seed=0, progress=False)
    cfg = train_config(blob_task, root / "data", model="resnet18", model_kwargs=TINY,
                       epochs=1, batch_size=16)
    train(blob_task, cfg, root / "run", progress=False)
    return root / "run", root / "data"


@pytest.fixture(scope="package")
def blob_images(blob_run, blob_task, tmp_path_factory):
    """Four PNG files of test samples (as ``retroscope demo`` writes them)."""
    from retroscope.data.dataset import ShardDataset

    out = tmp_path_factory.mktemp("images")
    test = ShardDataset(blob_run[1], blob_task, "test", in_memory=True)
    files, _ = blob_task.demo_files(test, out, 4)
    test.close()
    return [p for p in files if p.suffix == ".png"]
