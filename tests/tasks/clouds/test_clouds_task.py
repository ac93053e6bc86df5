"""The clouds task through the shared pipeline: simulate, train Mask R-CNN (tiny), evaluate with
COCO mAP and the Gaussian comparison, predict on triplet files, label real-style shots."""

import json
import math

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from retroscope.compute.campaign import generate
from retroscope.core.registry import get_task
from retroscope.tasks.clouds.frames import Camera, absorption_shot, sample_probe
from retroscope.tasks.clouds.profiles import Cloud, render_od
from retroscope.tasks.clouds.task import CLOUD_COLUMNS, MAX_CLOUDS

SHAPE = [64, 64]
TINY = {"fpn_channels": 32, "representation_size": 64, "rpn_post_nms_top_n_train": 100,
        "box_batch_size_per_image": 32}


@pytest.fixture(scope="module")
def task():
    return get_task("clouds").with_config(shape=SHAPE)


def test_simulated_shots_carry_consistent_labels(task):
    rng = np.random.default_rng(0)
    params = task.space.sample(12, "uniform", rng)
    data = task.simulate(params, np.random.default_rng(1))
    assert data["od"].shape == (12, 64, 64) and data["od"].dtype == np.float32
    assert data["clouds"].shape == (12, MAX_CLOUDS, len(CLOUD_COLUMNS))
    again = task.simulate(params, np.random.default_rng(1))
    assert np.array_equal(data["od"], again["od"])  # same seed, same bytes
    for i in range(12):
        expected = sum(int(params[f"n_{k.lower()}"][i]) for k in task.classes)
        target = task.detection_target({"clouds": data["clouds"][i]})
        assert len(target["labels"]) <= expected
        for box, mask in zip(target["boxes"], target["masks"]):
            rows, cols = np.nonzero(mask)  # the mask lies inside its box
            assert cols.min() + 0.5 >= box[0] - 1e-6 and cols.max() + 0.5 <= box[2] + 1e-6
            assert rows.min() + 0.5 >= box[1] - 1e-6 and rows.max() + 0.5 <= box[3] + 1e-6


def test_absorption_od_matches_the_column_density(task):
    """The stored OD (from noisy atom/probe/dark frames) is the cloud's column OD."""
    cloud = Cloud("MOT", 32.0, 30.0, 10.0, 8.0, 0.3, 1.0)
    column = render_od([cloud], (64, 64))
    rng = np.random.default_rng(2)
    probe = sample_probe(rng, (64, 64), peak_counts=(20000.0, 20000.0), waist_frac=(3.0, 3.0))
    frames = absorption_shot(column, probe, Camera(), rng)
    from retroscope.tasks.clouds.optical_depth import optical_depth

    od, _ = optical_depth(frames["atoms"], frames["probe"], frames["dark"])
    inside = cloud.mask((64, 64))
    assert od[inside].mean() == pytest.approx(column[inside].mean(), rel=0.05)
    # atom number of the truth: (pi/2) wx wy OD0 pixel area / sigma
    truth = task.true_objects({"clouds": np.array([[1, 32, 30, 10, 8, 0.3, 1.0, 0, 0, 0]]
                                                  + [[0] * 10] * 3, float)}, od)[0]
    expected = math.pi / 2 * 10 * 8 * 1.0 * task.imaging.atoms_per_od_px()
    assert truth["atom_number"] == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, task):
    from retroscope.train.config import TrainConfig
    from retroscope.train.fit import train

    root = tmp_path_factory.mktemp("clouds")
    generate(task, root / "data", 40, shard_size=20, seed=0, progress=False)
    cfg = TrainConfig(task="clouds", data=str(root / "data"), model="maskrcnn_resnet18_fpn",
                      model_kwargs={**task.model.kwargs, **TINY}, epochs=1, batch_size=4,
                      lr=5e-3)
    summary = train(task, cfg, root / "run", progress=False)
    return root, summary


def test_detection_run_directory_and_evaluation(trained):
    from retroscope.learners.detection.evaluation import evaluate_detection

    root, summary = trained
    for name in ("config.json", "model.safetensors", "normalization.json", "calibration.json",
                 "train_summary.json", "checkpoints/last.ckpt"):
        assert (root / "run" / name).exists(), name
    assert summary["best_val_mean_map"] is not None
    calibration = json.loads((root / "run" / "calibration.json").read_text())
    assert calibration["score_threshold"] == 0.5
    metrics = evaluate_detection(root / "run", root / "data", "test")
    assert set(metrics["coco"]) >= {"box_map", "mask_map", "box_map_MOT", "mask_map_ODT"}
    assert metrics["objects"]["true"] > 0
    assert metrics["inference_ms_per_frame"] > 0
    assert (root / "run" / "plots" / "detections.png").exists()
    assert json.loads((root / "run" / "metrics.json").read_text())["n"] == metrics["n"]
    # the joint fit is calibrated at training time and is the predictor's default mode
    assert set(calibration["refined"]) >= {"conformal_half_width", "shape_score_threshold",
                                           "precision"}
    groups = calibration["refined"]["precision"]
    assert all(set(g) == {"precision", "objects"} for g in groups.values())
    assert sum(g["objects"] for g in groups.values()) >= calibration["refined"]["matched_objects"]
    assert metrics["refined"] is True and metrics["refine_ms_per_frame"] >= 0
    assert set(metrics["coco_refined"]) == set(metrics["coco"])
    joint = metrics["task"]["joint_fit"]  # the refined clouds in the Fig. 7h comparison
    assert set(joint["rmse"]) >= {"x0", "y0", "wx", "wy"} and joint["clouds"] >= joint["refined"]


def test_recalibration_of_a_detection_run(trained, tmp_path):
    import shutil

    from retroscope.cli import app
    from retroscope.learners.detection.predictor import DetectionPredictor

    root, _ = trained
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    calibration = json.loads((run / "calibration.json").read_text())
    del calibration["refined"]  # a run calibrated before the joint fit existed
    (run / "calibration.json").write_text(json.dumps(calibration))
    assert DetectionPredictor(run).refine is False  # falls back to the masks
    with pytest.raises(ValueError, match="retroscope calibrate"):
        DetectionPredictor(run, refine=True)
    weights = (run / "model.safetensors").read_bytes()
    result = CliRunner().invoke(app, ["calibrate", str(run), "--data", str(root / "data")])
    assert result.exit_code == 0, result.output
    assert "refined" in json.loads((run / "calibration.json").read_text())
    assert DetectionPredictor(run).refine is True
    assert (run / "model.safetensors").read_bytes() == weights  # weights untouched
    # a data set with other simulation settings is refused, calibration.json kept
    before = (run / "calibration.json").read_bytes()
    generate(get_task("clouds").with_config(shape=SHAPE, fluorescence=False),
             tmp_path / "other", 8, shard_size=8, seed=0, progress=False)
    result = CliRunner().invoke(app, ["calibrate", str(run), "--data", str(tmp_path / "other")])
    assert result.exit_code != 0 and "simulation settings" in result.output
    assert (run / "calibration.json").read_bytes() == before


def test_bf16_mixed_detection_run_saves_float32_weights_that_predict(trained, task, tmp_path):
    from retroscope.learners.detection.predictor import DetectionPredictor
    from retroscope.train.config import TrainConfig
    from retroscope.train.fit import train

    root, _ = trained
    cfg = TrainConfig(task="clouds", data=str(root / "data"), model="maskrcnn_resnet18_fpn",
                      model_kwargs={**task.model.kwargs, **TINY}, epochs=1, batch_size=4,
                      lr=5e-3, limit_val=4, precision="bf16-mixed")
    train(task, cfg, tmp_path / "run", progress=False)
    predictor = DetectionPredictor(tmp_path / "run", device="cpu")
    assert all(p.dtype == torch.float32 for p in predictor.model.parameters())
    x = np.zeros(predictor.input_shape, np.float32)
    assert isinstance(predictor.predict_inputs([x])[0], list)


def _write_triplet(folder, shot_id, rng, clouds):
    column = render_od(clouds, (128, 128))
    frames = absorption_shot(column, sample_probe(rng, (128, 128)), Camera(), rng)
    for role, name in (("atoms", "Image"), ("probe", "Probe"), ("dark", "Background")):
        tifffile.imwrite(folder / f"{name}_{shot_id}.tiff", frames[role].astype(np.uint16))


def test_predict_on_triplets_bins_frames_and_reports_bad_shots(trained, tmp_path):
    from retroscope.infer.batch import predict_files

    root, _ = trained
    rng = np.random.default_rng(3)
    for k in range(3):
        _write_triplet(tmp_path, f"{k:04d}", rng, [Cloud("MOT", 60.0, 64.0, 20.0, 16.0)])
    (tmp_path / "Image_0009.tiff").write_bytes(b"not a tiff")  # no probe: incomplete
    settings = tmp_path / "lab.json"
    settings.write_text(json.dumps({"fringe_removal": True, "object_pixel_um": 4.0}))
    rows, failures = predict_files(root / "run", [tmp_path], settings=settings,
                                   out=tmp_path / "objects.csv")
    labels = {row["input"] for row in rows}
    assert labels == {f"{tmp_path}/{k:04d}" for k in range(3)}  # 128 px frames binned to 64
    assert any("0009" in label or "0009" in reason for label, reason in failures)
    assert (tmp_path / "objects.csv").exists()
    for row in rows:
        if row["n_objects"]:
            assert row["duplicate_of"] != row["object"]  # -1 or the row it repeats
            assert np.isnan(row["confidence"]) or 0.0 <= row["confidence"] <= 1.0
        if row["n_objects"]:  # NaN: no calibration data for this tiny run
            assert np.isnan(row["x0_low"]) or row["x0_low"] <= row["x0"] <= row["x0_high"]
            assert "atom_number" in row


def test_predict_on_camera_frames_of_any_size_bmp_and_fits(trained, tmp_path):
    """A 1292 x 964 grey-palette BMP triplet and a FITS shot go through ``predict``: read,
    cropped around the cloud, answered, every row naming the camera region it came from."""
    from PIL import Image

    from retroscope.infer.batch import predict_files

    root, _ = trained
    rng = np.random.default_rng(5)
    column = render_od([Cloud("MOT", 900.0, 400.0, 60.0, 50.0, 0.0, 1.5)], (964, 1292))
    frames = absorption_shot(column, sample_probe(rng, (964, 1292), peak_counts=(200, 240)),
                             Camera(dark_offset_counts=5.0), rng)
    bmp = tmp_path / "bmp"
    bmp.mkdir()
    for role, name in (("atoms", "Image"), ("probe", "Probe"), ("dark", "Background")):
        grey = Image.fromarray(np.clip(frames[role], 0, 255).astype(np.uint8), mode="L")
        grey = grey.convert("P")  # a grey palette that is not the identity: Pillow's mode 'P'
        grey.putpalette([min(g, 250) for g in range(256) for _ in range(3)])
        grey.save(bmp / f"{name}_0001.bmp")
    fits = pytest.importorskip("astropy.io.fits")
    cube = np.stack([frames[r] for r in ("atoms", "probe", "dark")]).astype(np.uint16)
    fits.PrimaryHDU(cube).writeto(tmp_path / "shot.fits")
    rows, failures = predict_files(root / "run", [bmp, tmp_path / "shot.fits"])
    assert failures == []
    assert {row["input"] for row in rows} == {f"{bmp}/0001", str(tmp_path / "shot.fits")}
    for row in rows:
        assert row["bin"] == 15 and row["crop_rows"] == row["crop_cols"] == 960
        # centred on the cloud (x = 900 px) as far as the frame allows: 1292 - 960 = 332
        assert abs(row["crop_col0"] - min(900 - 480, 1292 - 960)) <= 60
        if row["n_objects"]:
            assert row["crop_col0"] <= row["x0"] <= row["crop_col0"] + 960


def test_label_command_refines_rough_rois_to_coco_json(tmp_path):
    from retroscope.cli import app
    from retroscope.tasks.clouds.labels import rle_decode

    rng = np.random.default_rng(4)
    truth = Cloud("MOT", 60.0, 70.0, 14.0, 10.0, 0.4, 1.2)
    _write_triplet(tmp_path, "0001", rng, [truth])
    rois = tmp_path / "rois.json"
    rois.write_text(json.dumps({f"{tmp_path}/0001": [{"class": "MOT",
                                                      "box": [40, 55, 75, 90]}]}))
    out = tmp_path / "labels.json"
    result = CliRunner().invoke(app, ["clouds", "label", str(tmp_path), "--rois", str(rois),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    coco = json.loads(out.read_text())
    (ann,) = coco["annotations"]
    g = ann["gaussian"]
    assert g["x0"] == pytest.approx(60.0, abs=0.5) and g["wx"] == pytest.approx(14.0, rel=0.05)
    assert rle_decode(ann["segmentation"]).sum() == ann["area"]
    again = CliRunner().invoke(app, ["clouds", "label", str(tmp_path), "--rois", str(rois),
                                     "--out", str(out)])
    assert again.exit_code != 0  # never overwrites without --overwrite


def test_real_shots_go_through_prediction(trained):
    """The real ring-BEC triplets (skipped without the data folder): every shot is read,
    turned into OD with fringe removal, binned 512 -> 64 and answered (possibly with no
    object: this tiny network is barely trained; the benchmark counts with a real run)."""
    from pathlib import Path

    from retroscope.infer.batch import predict_files

    real = Path(__file__).resolve().parents[4] / "shared" / "data" / "clouds" / "probe-reconstruction"
    if not real.is_dir():
        pytest.skip(f"real data folder {real} absent")
    root, _ = trained
    settings = root / "real.json"
    settings.write_text(json.dumps({"fringe_removal": True, "saturation_counts": 65535}))
    rows, failures = predict_files(root / "run", [real], settings=settings)
    assert failures == []
    assert len({row["input"] for row in rows}) == 12
