import json

from typer.testing import CliRunner

from retroscope.cli import app

SMALL = json.dumps({"n_xy": 32, "n_z": 32, "pad_to": 80, "detector_px": 64})


def test_help_and_tasks():
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0 and "diffraction" in result.output


def test_simulate_resume_and_refusal(tmp_path):
    runner = CliRunner()
    args = ["simulate", "diffraction", "--n", "6", "--shard-size", "3", "--workers", "1",
            "--out", str(tmp_path / "d"), "--config", SMALL]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "6 samples" in first.output
    shard = tmp_path / "d" / "shards" / "shard-00000.h5"
    mtime = shard.stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and shard.stat().st_mtime_ns == mtime  # nothing recomputed
    other = runner.invoke(app, args + ["--seed", "3"])
    assert other.exit_code == 2 and "different settings" in other.output
    assert shard.stat().st_mtime_ns == mtime


def test_unknown_task_is_a_clear_error():
    result = CliRunner().invoke(app, ["simulate", "nonesuch", "--n", "1"])
    assert result.exit_code == 2 and "unknown task" in result.output


def test_bad_settings_and_json_are_refused_with_the_setting_named(tmp_path):
    runner = CliRunner()
    unknown = runner.invoke(app, ["simulate", "diffraction", "--n", "2", "--workers", "1",
                                  "--out", str(tmp_path / "d"), "--config", '{"n_xyz": 32}'])
    assert unknown.exit_code == 2 and "unknown setting 'n_xyz'" in " ".join(unknown.output.split())
    wrong = runner.invoke(app, ["simulate", "diffraction", "--n", "2", "--workers", "1",
                                "--out", str(tmp_path / "d"), "--config", '{"n_xy": "big"}'])
    assert wrong.exit_code == 2 and "msft.n_xy" in " ".join(wrong.output.split())
    broken = runner.invoke(app, ["train", "diffraction", "--data", str(tmp_path / "d"),
                                 "--out", str(tmp_path / "r"), "--model-kwargs", "{oops"])
    said = " ".join(broken.output.split())  # rich wraps long messages
    assert broken.exit_code == 2 and "--model-kwargs: not valid JSON" in said
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


def test_a_folder_that_is_no_run_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "is this a retroscope run?" in result.output
