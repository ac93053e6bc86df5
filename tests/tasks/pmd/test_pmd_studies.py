"""The pieces of ``retroscope pmd study`` (the studies end to end: slow)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from retroscope.tasks.pmd.studies import dictionary_classify, mae_fit


def test_the_learning_curve_fit_recovers_the_papers_constants():
    n = np.array([500, 1000, 1500, 2000, 2500, 5000])
    fit = mae_fit(n, 7.241 * n ** -0.526 + 0.075)
    assert fit["a"] == pytest.approx(7.241, rel=0.02)
    assert fit["b"] == pytest.approx(-0.526, rel=0.02)
    assert fit["c"] == pytest.approx(0.075, abs=2e-3)
    # the paper: "about 50 000 images are needed to achieve an MAE less than 0.1 a.u."
    assert 3e4 < fit["n_for_mae_0.1"] < 8e4


def test_the_dictionary_answers_with_the_class_of_the_closest_masked_entry():
    rng = np.random.default_rng(0)
    entries = rng.random((3, 8, 4))
    masks = np.zeros((3, 8, 4), bool)
    masks[0, :2], masks[1, 2:5], masks[2, 5:] = True, True, True
    images = rng.random((6, 8, 4))
    images[:2, :2] = entries[0, :2]       # match entry 0 where its mask is
    images[2:4, 2:5] = entries[1, 2:5]
    images[4:, 5:] = entries[2, 5:]
    got = dictionary_classify(entries, masks, np.array([10, 11, 12]), images)
    np.testing.assert_array_equal(got, [10, 10, 11, 11, 12, 12])
    empty = masks.copy()
    empty[0] = False                      # an empty entry never wins
    assert 10 not in dictionary_classify(entries, empty, np.array([10, 11, 12]), images)


def test_study_options_are_checked_before_any_work():
    from retroscope.cli import app

    result = CliRunner().invoke(app, ["pmd", "study", "sample-size", "data", "--out", "o",
                                      "--sizes", "10,x"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
    result = CliRunner().invoke(app, ["pmd", "study", "transfer", "base", "run", "nonsense",
                                      "--out", "o"])
    assert result.exit_code == 2 and "NAME=DATASET" in result.output


@pytest.mark.slow
def test_studies_run_end_to_end_on_smoke_maps(tmp_path):
    from retroscope.cli import app

    data = tmp_path / "data"
    runner = CliRunner()
    config = json.dumps({"preset": "smoke", "r_bohr": [1, 8], "intensity_w_cm2": [1e14, 2e14]})
    assert runner.invoke(app, ["simulate", "pmd", "--n", "240", "--out", str(data),
                               "--workers", "1", "--shard-size", "60",
                               "--config", config]).exit_code == 0
    for study, extra in [("sample-size", ["--sizes", "20,40,80,160", "--minutes", "0.05"]),
                         ("one-d", ["--minutes", "0.05"]),
                         ("alternatives", ["--methods", "dc_mse,svm_hog", "--max-test", "10"]),
                         ("dictionary", ["--minutes", "0.1", "--per-cell", "1"])]:
        result = runner.invoke(app, ["pmd", "study", study, str(data), "--out",
                                     str(tmp_path / study), *extra])
        assert result.exit_code == 0, result.output
        out = json.loads((tmp_path / study / f"{study}.json").read_text())
        assert out["study"] == study and out["paper"]
    curve = json.loads((tmp_path / "sample-size" / "sample-size.json").read_text())
    assert [r["n_train"] for r in curve["rows"]] == [20, 40, 80, 160] and "fit" in curve
    assert (tmp_path / "sample-size" / "sample-size.png").exists()
    words = json.loads((tmp_path / "dictionary" / "dictionary.json").read_text())
    assert set(words["accuracy"]) == {"occlusion", "gradcam", "lime", "random"}
    cep = tmp_path / "cep"
    assert runner.invoke(app, ["simulate", "pmd", "--n", "120", "--out", str(cep),
                               "--workers", "1", "--shard-size", "60", "--config",
                               json.dumps({"preset": "smoke", "r_bohr": [1, 8],
                                           "intensity_w_cm2": [1e14, 2e14],
                                           "cep_rad": [0, 6.283]})]).exit_code == 0
    result = runner.invoke(app, ["pmd", "study", "transfer", str(data),
                                 str(tmp_path / "sample-size" / "n160"), f"cep={cep}",
                                 "--out", str(tmp_path / "tl"), "--minutes", "0.05"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "tl" / "transfer.json").read_text())["columns"]["cep"]
    assert {"cnn", "cnn_tl", "new_cnn", "dc_mse", "dc_sift", "svm_hog", "dt_hog"} <= set(table)
    assert table["cnn_tl"]["n_train"] == table["new_cnn"]["n_train"] > 0


def test_random_patches_are_windows_covering_at_least_the_area():
    from retroscope.tasks.pmd.studies import random_patches

    masks = random_patches([0, 100, 500], (64, 32), np.random.default_rng(0))
    assert masks.shape == (3, 64, 32)
    assert masks[0].sum() == 0 and 100 <= masks[1].sum() < 100 + 32 and masks[2].sum() >= 500
    one = random_patches([1], (64, 32), np.random.default_rng(1))[0]  # one window: 8 x 4
    rows, cols = np.flatnonzero(one.any(axis=1)), np.flatnonzero(one.any(axis=0))
    assert one.sum() == 32 and len(rows) == 8 and len(cols) == 4
