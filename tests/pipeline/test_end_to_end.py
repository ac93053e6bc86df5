"""simulate -> train -> evaluate -> predict on files, with the tiny blob task."""

import json

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from retroscope.cli import app
from retroscope.compute.campaign import generate
from retroscope.evaluate.report import evaluate
from retroscope.infer.batch import predict_files
from retroscope.runs import RunError
from retroscope.train.config import TrainConfig
from retroscope.train.fit import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, blob_task):
    root = tmp_path_factory.mktemp("e2e")
    generate(blob_task, root / "data", 240, shard_size=64, seed=0, progress=False)
    cfg = TrainConfig(task="blob-test", data=str(root / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=6,
                      batch_size=32, lr=3e-3)
    summary = train(blob_task, cfg, root / "run", progress=False)
    return root, summary


def test_run_directory_is_complete(trained):
    root, summary = trained
    run = root / "run"
    for name in ("config.json", "model.safetensors", "normalization.json", "calibration.json",
                 "ood.safetensors", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    calib = json.loads((run / "calibration.json").read_text())
    assert calib["conformal"]["coverage"] == 0.9
    assert summary["n_train"] + summary["n_val"] < 240


def test_evaluate_writes_metrics_and_plots(trained):
    root, _ = trained
    metrics = evaluate(root / "run", root / "data", "test", progress=False)
    assert set(metrics["targets"]) == {"x0_px", "sigma_px"}
    assert (root / "run" / "metrics.json").exists()
    assert (root / "run" / "plots" / "predicted_vs_true.png").stat().st_size > 1000
    assert 0.0 <= metrics["coverage_mean"] <= 1.0
    # learned something: better than predicting the middle of the range (rmse ~ 10/sqrt(12))
    assert metrics["targets"]["x0_px"]["rmse"] < 2.5


def test_predict_files_reports_bad_files_and_keeps_going(trained, tmp_path, blob_task):
    root, _ = trained
    rng = np.random.default_rng(5)
    params = {"x0_px": np.array([6.0]), "sigma_px": np.array([2.0])}
    good = blob_task.simulate(params, rng)["image"][0]
    np.save(tmp_path / "good.npy", good)
    np.save(tmp_path / "nan.npy", np.full((13, 17), np.nan))
    np.save(tmp_path / "wrong.npy", np.zeros((20, 20), dtype=np.float32))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files = [tmp_path / n for n in ("good.npy", "nan.npy", "wrong.npy", "broken.png")]
    rows, failures = predict_files(root / "run", files, out=tmp_path / "out.csv")
    assert [r["input"] for r in rows] == ["good.npy"]
    failed = {label.split("/")[-1]: reason for label, reason in failures}
    assert {"nan.npy", "wrong.npy", "broken.png"} <= {k.split("[")[0] for k in failed}
    assert any("expects" in r for r in failed.values())  # the wrong shape is explained
    text = (tmp_path / "out.csv").read_text()
    assert "good.npy" in text and "nan.npy" in text and "x0_px_low" in text
    row = rows[0]
    assert row["x0_px_low"] <= row["x0_px"] <= row["x0_px_high"]

    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(root / "run"), str(files[0]), str(files[1])])
    assert result.exit_code == 1  # something failed, and the exit code says so
    assert "nan.npy" in result.output


def test_existing_run_is_never_overwritten(trained, blob_task):
    root, _ = trained
    cfg = TrainConfig(task="blob-test", data=str(root / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=1)
    before = (root / "run" / "model.safetensors").read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        train(blob_task, cfg, root / "run", progress=False)
    assert (root / "run" / "model.safetensors").read_bytes() == before


class Crash(Exception):
    pass


class CrashAfterEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise Crash("simulated power cut")


# a resumed run writes into its own log and checkpoint folders, which Lightning warns about
@pytest.mark.filterwarnings("ignore:Experiment logs directory")
@pytest.mark.filterwarnings("ignore:Checkpoint directory")
def test_resume_continues_from_last_checkpoint(tmp_path, blob_task):
    generate(blob_task, tmp_path / "data", 120, shard_size=64, seed=1, progress=False)
    cfg = TrainConfig(task="blob-test", data=str(tmp_path / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=3, batch_size=32)
    with pytest.raises(Crash):
        train(blob_task, cfg, tmp_path / "run", progress=False, callbacks=[CrashAfterEpoch(1)])
    assert not (tmp_path / "run" / "model.safetensors").exists()
    epochs_seen = []

    class Record(Callback):
        def on_train_epoch_start(self, trainer, module):
            epochs_seen.append(trainer.current_epoch)

    summary = train(blob_task, cfg, tmp_path / "run", resume=True, progress=False,
                    callbacks=[Record()])
    assert epochs_seen[0] >= 1 and epochs_seen[-1] == 2  # picks up where it stopped, not at 0
    assert summary["epochs_run"] == 3


def test_mlflow_tracking_on_a_local_sqlite_store(tmp_path, blob_task):
    mlflow = pytest.importorskip("mlflow")
    generate(blob_task, tmp_path / "data", 100, shard_size=50, seed=2, progress=False)
    cfg = TrainConfig(task="blob-test", data=str(tmp_path / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=1,
                      batch_size=32, tracking="mlflow")
    train(blob_task, cfg, tmp_path / "run", progress=False)
    store = tmp_path / "run" / "mlflow.db"
    assert store.exists()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("retroscope-blob-test").experiment_id])
    assert runs and "val_loss" in runs[0].data.metrics


def test_recalibrate_refits_intervals_without_touching_weights(trained):
    from retroscope.train.fit import recalibrate

    root, _ = trained
    before = (root / "run" / "model.safetensors").read_bytes()
    summary = recalibrate(root / "run")
    assert 0.0 <= summary["val_coverage"] <= 1.0
    from safetensors.torch import load_file

    a = load_file(str(root / "run" / "model.safetensors"))
    (root / "before.safetensors").write_bytes(before)
    b = load_file(str(root / "before.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_demo_runs_the_whole_chain_on_a_tiny_task(tmp_path, blob_task):
    from retroscope.demo import run_demo

    report = run_demo(blob_task, tmp_path / "demo")
    assert set(report["timings"]) == {"simulate_s", "train_s", "evaluate_s"}
    rows = (tmp_path / "demo" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 2  # header, two PNG files, two frames of the CXI file
    with pytest.raises(SystemExit, match="overwrite"):
        run_demo(blob_task, tmp_path / "demo")


def test_bf16_mixed_run_keeps_a_float32_head_and_saves_loadable_weights(tmp_path, blob_task):
    import torch

    from retroscope.learners.regression.predictor import Predictor
    from retroscope.learners.regression.module import Network

    net = Network("resnet18", {"base_width": 8, "stem": "small"}, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, logvar = net(torch.randn(3, 1, 16, 16))
    assert mean.dtype == torch.float32 and logvar.dtype == torch.float32

    generate(blob_task, tmp_path / "data", 120, shard_size=64, seed=3, progress=False)
    cfg = TrainConfig(task="blob-test", data=str(tmp_path / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=2,
                      batch_size=32, precision="bf16-mixed", max_minutes=30)
    train(blob_task, cfg, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16-mixed"
    predictor = Predictor(tmp_path / "run")
    x = np.random.default_rng(0).random((4, 13, 17)).astype(np.float32)
    assert np.all(np.isfinite(predictor.predict(x).value))


def test_unknown_precision_is_refused_before_the_run_directory_is_made(tmp_path, blob_task):
    cfg = TrainConfig(task="blob-test", data=str(tmp_path / "data"), model="resnet18",
                      precision="fp8")
    with pytest.raises(RunError, match="precision"):
        train(blob_task, cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_values_outside_the_training_range_are_marked_not_clipped(blob_task):
    from retroscope.learners.regression.predictor import out_of_range

    columns = ("x0_px", "sigma_px")  # trained on [3, 13] px and [1, 3] px
    assert out_of_range(blob_task.space, columns, [13.0, 1.0]) == []
    assert out_of_range(blob_task.space, columns, [14.2, 0.5]) == ["x0_px", "sigma_px"]
    assert out_of_range(blob_task.space, ("q_x",), [7.0]) == []  # not a scalar parameter


def test_evaluation_states_the_trivial_reference_on_the_same_samples(trained):
    """Beside its own errors the network's evaluation gives those of guessing the training
    mean on the same test samples; this network has learned something, so it beats it."""
    root, _ = trained
    metrics = evaluate(root / "run", root / "data", "test", progress=False)
    ref = metrics["reference"]
    assert ref["what"] == "the training mean"
    ours = metrics["task_metrics"]["abs_error_x0_px"]["median"]
    assert ours < 0.5 * ref["task_metrics"]["abs_error_x0_px"]["median"]
