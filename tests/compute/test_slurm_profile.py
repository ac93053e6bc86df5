"""SLURM profiles and the job script a campaign would submit (nothing is submitted)."""

from __future__ import annotations

import subprocess

import pytest
from typer.testing import CliRunner

from retroscope.compute.slurm import SlurmProfile, walltime_minutes

pytest.importorskip("dask_jobqueue")


@pytest.mark.parametrize("text, minutes", [("30", 30), ("04:00:00", 240), ("01:30", 1.5),
                                           ("1-02:00:00", 1560), ("2-12", 3600)])
def test_walltime_minutes_reads_slurm_time_strings(text, minutes):
    assert walltime_minutes(text) == pytest.approx(minutes)


def test_profile_file_fields_and_unknown_field(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('cores = 4\nwalltime = "01:00:00"\naccount = "amo"\n'
                    'prologue = ["module load python"]\n')
    profile = SlurmProfile.load(good)
    assert (profile.cores, profile.account, profile.prologue) == (4, "amo", ("module load python",))
    assert profile.lifetime_minutes == pytest.approx(50)

    bad = tmp_path / "bad.toml"
    bad.write_text("cores = 4\ncpus = 8\n")
    with pytest.raises(ValueError, match=r"bad.toml.*unknown fields \['cpus'\]"):
        SlurmProfile.load(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("cores = \n")
    with pytest.raises(ValueError, match="broken.toml"):
        SlurmProfile.load(broken)


def test_walltime_too_short_for_the_retirement_is_refused():
    with pytest.raises(ValueError, match="lifetime"):
        SlurmProfile(walltime="00:12:00", retire_before_minutes=10, stagger_minutes=4)


def test_dry_run_prints_a_job_script_that_retires_workers_and_keeps_the_allocator(tmp_path):
    from retroscope.cli import app

    profile = tmp_path / "cluster.toml"
    profile.write_text('cores = 3\nmemory = "6GB"\nwalltime = "02:00:00"\naccount = "amo"\n'
                       'partition = "cpu"\njobs = 5\nprologue = ["echo ready"]\n')
    out = tmp_path / "campaign"
    result = CliRunner().invoke(app, ["simulate", "crystal", "--n", "1000", "--out", str(out),
                                      "--shard-size", "100", "--cluster", "slurm",
                                      "--cluster-profile", str(profile), "--dry-run"])
    assert result.exit_code == 0, result.output
    script = result.output
    for line in ("#SBATCH -A amo", "#SBATCH -p cpu", "#SBATCH -t 02:00:00", "--nworkers 3",
                 "--nthreads 1", "--lifetime 110m", "--lifetime-stagger 4m",
                 "export OMP_NUM_THREADS=1", "echo ready"):
        assert line in script, line
    assert "10 shards" in script and "up to 5 jobs of 3 workers" in script
    assert not out.exists()          # a dry run writes nothing

    # the configuration lines, run by bash, write a Dask file that unsets the nanny's
    # MALLOC_TRIM_THRESHOLD_ (a YAML null)
    config_lines = [line for line in script.splitlines() if "DASK_CONFIG" in line]
    shell = "\n".join(["export TMPDIR=" + str(tmp_path), "SLURM_JOB_ID=7", *config_lines,
                       'cat "$DASK_CONFIG/retroscope.yaml"'])
    written = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
    import yaml

    config = yaml.safe_load(written.stdout)
    assert config["distributed"]["nanny"]["pre-spawn-environ"] == {"MALLOC_TRIM_THRESHOLD_": None}


def test_cluster_options_are_checked():
    from retroscope.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "crystal", "--n", "10", "--out", "x",
                                 "--cluster", "pbs", "--dry-run"])
    assert result.exit_code != 0 and "only 'slurm'" in result.output
    result = runner.invoke(app, ["simulate", "crystal", "--n", "10", "--out", "x", "--dry-run"])
    assert result.exit_code != 0 and "--dry-run needs --cluster slurm" in result.output
