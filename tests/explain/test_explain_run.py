"""retroscope.explain on a trained run of the toy plugin task (``tests/plugins/blob_task.py``):
the library's maps have the input's size for every method, and ``retroscope explain`` writes
NPY and PNG per file, names a bad file and exits 1 while still explaining the good ones."""

import numpy as np
import pytest
from typer.testing import CliRunner

from retroscope.cli import app
from retroscope.compute.campaign import generate
from retroscope.explain import METHODS, attribute
from retroscope.explain.files import output_stem
from retroscope.runs import open_run
from retroscope.train.config import TrainConfig
from retroscope.train.fit import train


@pytest.fixture(scope="module")
def run(tmp_path_factory, blob_task):
    """A briefly trained regression run (resnet18 of width 8 on 13 x 17 spots)."""
    root = tmp_path_factory.mktemp("explain")
    generate(blob_task, root / "data", 96, shard_size=96, seed=0, progress=False)
    cfg = TrainConfig(task="blob-test", data=str(root / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=1,
                      batch_size=32, lr=3e-3)
    train(blob_task, cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def spot(blob_task):
    params = {"x0_px": np.array([6.0]), "sigma_px": np.array([2.0])}
    return blob_task.simulate(params, np.random.default_rng(3))["image"][0]


@pytest.mark.parametrize("method", METHODS)
def test_attribute_maps_have_the_input_size(run, spot, method):
    opened = open_run(run)
    x = np.stack(opened.inputs([spot, spot[:, ::-1]]))
    maps = attribute(opened, x, method, target="sigma_px", device="cpu")
    assert maps.shape == (2, *opened.input_shape[1:]) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and np.any(maps != 0)


def test_attribute_refuses_an_unknown_target_and_a_wrong_shape(run, spot):
    x = np.stack(open_run(run).inputs([spot]))
    with pytest.raises(ValueError, match="x0_px, sigma_px"):
        attribute(run, x, target="radius", device="cpu")
    with pytest.raises(ValueError, match="expects"):
        attribute(run, x[:, :, :-1], device="cpu")


def test_cli_explains_good_files_and_names_bad_ones(run, spot, tmp_path):
    np.save(tmp_path / "good.npy", spot)
    np.save(tmp_path / "nan.npy", np.full(spot.shape, np.nan))
    np.save(tmp_path / "wrong.npy", np.zeros((20, 20), np.float32))
    out = tmp_path / "maps"
    files = [tmp_path / n for n in ("nan.npy", "good.npy", "wrong.npy")]
    result = CliRunner().invoke(app, ["explain", str(run), *map(str, files), "--method", "gradcam",
                                      "--target", "x0_px", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "nan.npy" in result.output and "wrong.npy" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["good_gradcam.npy", "good_gradcam.png"]
    saved = np.load(out / "good_gradcam.npy")
    assert saved.shape == spot.shape and saved.dtype == np.float32 and np.any(saved != 0)
    assert (out / "good_gradcam.png").stat().st_size > 1000

    again = CliRunner().invoke(app, ["explain", str(run), str(files[1]), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "good_occlusion.npy").exists() and (out / "good_occlusion.png").exists()
    refused = CliRunner().invoke(app, ["explain", str(run), str(files[1]), "--method", "shap"])
    assert refused.exit_code == 2 and "occlusion, gradcam, lime" in refused.output


def test_output_names_follow_the_file_and_the_frame():
    assert output_stem("good.npy", "/data/good.npy") == "good"
    assert output_stem("shots.h5[3]", "/data/shots.h5") == "shots_3"
    assert output_stem("/data/run 7.tif[0]", "/data/run 7.tif") == "run 7_0"
