"""The explosion task through the whole pipeline on a tiny set: simulate, train the ion
transformer for one epoch, evaluate, and predict on CSV and HDF5 event files (with bad
events refused by name and one XYZ file written per event)."""

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from retroscope.cli import app
from retroscope.tasks.explosion import TASK

MOLECULES = '["H2O", "NH3", "CH4", "HCN"]'
TINY = '{"dim": 16, "depth": 1, "heads": 2, "denoiser_depth": 1}'


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explosion")
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "explosion", "--n", "240", "--out",
                                 str(root / "data"), "--workers", "1", "--seed", "3",
                                 "--shard-size", "120", "--config",
                                 f'{{"molecules": {MOLECULES}}}'])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "explosion", "--data", str(root / "data"), "--out",
                                 str(root / "run"), "--epochs", "1", "--batch-size", "32",
                                 "--model-kwargs", TINY])
    assert result.exit_code == 0, result.output
    return root


def test_evaluate_reports_frame_errors_and_bonds(run):
    result = CliRunner().invoke(app, ["evaluate", str(run / "run"), "--data", str(run / "data")])
    assert result.exit_code == 0, result.output
    import json

    m = json.loads((run / "run" / "metrics.json").read_text())
    assert m["n"] > 10 and 0 < m["coordinate_mae"] < 10
    assert set(m["axes"]) == {"x", "y", "z"}
    assert "bond_length_error_bohr" in m["task_metrics"]
    assert 0 <= m["coverage_mean"] <= 1


def write_files(folder, events):
    csv = folder / "events.csv"
    lines = ["event,element,charge,px_au,py_au,pz_au"]
    for e, (symbols, q, p) in enumerate(events):
        lines += [f"{e},{s},{qq},{pp[0]},{pp[1]},{pp[2]}" for s, qq, pp in zip(symbols, q, p)]
    lines += ["9,O,9,1,2,3", "9,H,1,-1,-2,-3",           # charge above Z
              "10,O,2,nan,0,0", "10,H,1,1,1,1",          # not finite
              "11,O,2,1,2,3"]                            # one ion
    csv.write_text("\n".join(lines) + "\n")
    h5 = folder / "events.h5"
    with h5py.File(h5, "w") as f:
        symbols, q, p = events[0]
        g = f.create_group("events")
        g["event_index"] = np.zeros(len(q), int)
        g["z"] = [{"O": 8, "H": 1}[s] for s in symbols]
        g["charge"] = q
        g["momentum_au"] = p
    return csv, h5


def test_predict_on_files_refuses_bad_events_and_writes_xyz(run, tmp_path):
    data = TASK.with_config(molecules=["H2O", "NH3", "CH4", "HCN"])
    ev = data.simulate(data.space.sample_uniform(2, np.random.default_rng(0)) | {
        "molecule": np.zeros(2)}, np.random.default_rng(1))
    events = []
    for i in range(2):
        k = int(ev["mask"][i].sum())
        events.append((data.token_names(ev["ions"][i]), ev["ions"][i, :k, 1].astype(int),
                       ev["ions"][i, :k, 2:]))
    events[1] = tuple(x[:2] for x in events[1])    # one hydrogen missed
    csv, h5 = write_files(tmp_path, events)
    settings = tmp_path / "lab.toml"
    settings.write_text('formula = "H2O"\n')
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["predict", str(run / "run"), str(csv), str(h5),
                                      "--settings", str(settings), "--out", str(out)])
    assert result.exit_code == 1, result.output          # bad events were refused
    text = out.read_text()
    for reason in ("not integers in 1..Z", "not finite", "at least 2 ions"):
        assert reason in text
    import csv as csvlib

    rows = list(csvlib.DictReader(out.open()))
    answered = [r for r in rows if not r.get("error")]
    assert len(answered) == 9                           # 3 atoms x (2 CSV + 1 HDF5 events)
    missed = [r for r in answered if r["detected"] == "False"]
    assert len(missed) == 1 and missed[0]["name"] == "H"
    assert float(missed[0]["momentum_imbalance"]) > 0.05
    xyz = sorted((tmp_path / "pred_structures").glob("*.xyz"))
    assert len(xyz) == 3
    lines = xyz[0].read_text().splitlines()
    assert lines[0] == "3" and lines[2].split()[0] == "O"


def test_momenta_in_wrong_units_come_back_ood(run, tmp_path):
    from retroscope.learners.geometry.predictor import Predictor

    data = TASK.with_config(molecules=["H2O", "NH3", "CH4", "HCN"])
    ev = data.simulate(data.space.sample_uniform(40, np.random.default_rng(5)),
                       np.random.default_rng(6))
    predictor = Predictor(run / "run")
    right = predictor.predict(ev["ions"])
    wrong = ev["ions"].copy()
    wrong[..., 2:] /= 100.0                      # kg m/s read as 1e-2 a.u., say
    flagged = predictor.predict(wrong)
    assert right["ood"].mean() < 0.2
    assert flagged["ood"].all()


def test_a_held_out_campaign_of_other_molecules_is_scored_whole(run, tmp_path):
    import json

    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "explosion", "--n", "30", "--out",
                                 str(tmp_path / "held"), "--workers", "1", "--seed", "9",
                                 "--config", '{"molecules": ["CH3OH", "H2CO"]}'])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(run / "run"), "--data", str(tmp_path / "held"),
                                 "--split", "all", "--out", str(tmp_path / "eval"),
                                 "--baseline", "2"])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["n"] == 30 and m["split"] == "all"
    assert m["ood_fraction"] == 1.0          # molecules of formulas the run never saw
    assert m["ood_novel_composition_fraction"] == 1.0
    assert 0.0 <= m["ood_feature_distance_fraction"] <= 1.0
    assert m["baseline"]["n_events"] == 2 and m["baseline"]["baseline_coordinate_mae"] < 1.0
    bad = runner.invoke(app, ["evaluate", str(run / "run"), "--data", str(tmp_path / "held"),
                              "--split", "everything"])
    assert bad.exit_code != 0 and "split must be one of" in bad.output


def test_ion_occlusion_writes_a_row_per_dropped_ion_and_atom(run, tmp_path):
    import csv as csvlib

    csv = tmp_path / "one.csv"
    csv.write_text("event,element,charge,px_au,py_au,pz_au,formula\n"
                   "0,O,2,10,60,-30,H2O\n0,H,1,-40,-20,30,H2O\n0,H,1,30,-40,0,H2O\n")
    result = CliRunner().invoke(app, ["explosion", "explain", str(run / "run"), str(csv),
                                      "--out", str(tmp_path / "occ")])
    assert result.exit_code == 0, result.output
    rows = list(csvlib.DictReader((tmp_path / "occ" / "occlusion.csv").open()))
    assert len(rows) == 9                                # 3 ions dropped x 3 atoms
    assert all(float(r["shift_bohr"]) >= 0 for r in rows)
    assert len(list((tmp_path / "occ").glob("*_occlusion.png"))) == 1


def test_the_deterministic_regressor_baseline_trains_and_evaluates(run, tmp_path):
    import json

    runner = CliRunner()
    result = runner.invoke(app, ["train", "explosion", "--data", str(run / "data"), "--out",
                                 str(tmp_path / "regressor"), "--epochs", "1", "--batch-size",
                                 "32", "--model-kwargs", TINY, "--view", '{"regressor": true}'])
    assert result.exit_code == 0, result.output
    calibration = json.loads((tmp_path / "regressor" / "calibration.json").read_text())
    assert calibration["samples_per_event"] == 1
    result = runner.invoke(app, ["evaluate", str(tmp_path / "regressor"), "--data",
                                 str(run / "data")])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "regressor" / "metrics.json").read_text())
    assert m["samples_per_event"] == 1 and 0 < m["coordinate_mae"] < 10
    assert 0 < m["coverage_mean"] <= 1     # one conformal width per axis, still an interval


def test_missing_ion_table_has_the_fill_and_the_forward_fit(run, tmp_path):
    import json

    result = CliRunner().invoke(app, ["explosion", "study", "missing-ions", str(run / "run"),
                                      str(run / "data"), "--out", str(tmp_path), "--events",
                                      "12", "--baseline", "2"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "missing-ions.json").read_text())["rows"]
    assert rows["none"]["forward_fit"]["mae_missed"] is None
    one_h = rows["1 H"]
    assert one_h["forward_fit"]["n_events"] == 2 and one_h["forward_fit"]["mae_missed"] > 0
    assert one_h["fill_then_complete_model"]["mae_missed"] > 0
    assert one_h["network_same_events"]["n_events"] == 2


def test_two_step_study_with_a_smaller_precise_set(run, tmp_path):
    """The study runs its three networks; --precise-events trains the precise ones on the
    first N events (the test split stays whole)."""
    import json

    result = CliRunner().invoke(app, [
        "explosion", "study", "two-step", str(run / "data"), str(run / "data"), "--out",
        str(tmp_path), "--minutes", "0.02", "--fine-tune-minutes", "0.02",
        "--precise-events", "40"])
    assert result.exit_code == 0, result.output
    study = json.loads((tmp_path / "two-step.json").read_text())
    assert study["precise_events"] == 40
    assert study["scores"]["two_step"]["n_train"] == 40
    assert study["scores"]["precise_only"]["n_train"] == 40
    assert study["scores"]["cheap_only"]["n_train"] > 40
    assert study["gain_precise_only_over_two_step"] > 0
