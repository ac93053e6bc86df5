"""Simulated events: stored arrays, determinism, and the split by molecule."""

import numpy as np
import pytest

from retroscope.tasks.explosion import explode
from retroscope.tasks.explosion.dynamics import coulomb_energy, kinetic_energy
from retroscope.tasks.explosion.task import ExplosionSettings, ExplosionTask


def simulate(task, n=24, seed=0):
    params = task.space.sample_uniform(n, np.random.default_rng(seed))
    return params, task.simulate(params, np.random.default_rng(seed + 100))


def test_events_hold_consistent_padded_arrays():
    task = ExplosionTask(ExplosionSettings(molecules=("H2O", "CH3CH2OH", "H2CCl2")))
    params, ev = simulate(task)
    assert ev["ions"].shape == (24, 10, 5) and ev["position_bohr"].dtype == np.float32
    assert set(task.label_keys) | {task.observable} == set(ev)
    sizes = ev["mask"].sum(axis=1)
    assert set(sizes) <= {3, 9, 5}
    for i in range(len(sizes)):
        k = sizes[i]
        assert not ev["mask"][i, k:].any() and not ev["ions"][i, k:].any()
        pos = ev["position_bohr"][i, :k].astype(float)
        assert np.allclose(pos.mean(axis=0), 0, atol=1e-5)
        assert (ev["ions"][i, :k, 0] > 0).all() and (ev["ions"][i, :k, 1] >= 1).all()
        p = ev["ions"][i, :k, 2:].astype(float)
        assert np.abs(p.sum(axis=0)).max() < 1e-5 * np.abs(p).sum()
        again = explode(pos, ev["ions"][i, :k, 1], ev["mass_u"][i, :k])
        assert np.abs(again - p).max() < 1e-4 * np.abs(p).max()
        assert not ev["ionisation_times"][i].any()          # cheap mode: all at t = 0
    _, again = simulate(task)
    assert all(np.array_equal(ev[k], again[k], equal_nan=True) for k in ev)


def test_precise_events_charge_up_during_the_pulse():
    cheap = ExplosionTask(ExplosionSettings(molecules=("H2CCl2",), pulse_fwhm_fs=(20, 30)))
    precise = cheap.from_settings(ExplosionSettings(molecules=("H2CCl2",), mode="precise",
                                                    pulse_fwhm_fs=(20, 30)))
    _, ev = simulate(precise, n=6)
    for i in range(6):
        k = ev["mask"][i].sum()
        m = ev["mass_u"][i, :k]
        ker = kinetic_energy(ev["ions"][i, :k, 2:].astype(float), m)
        instant = coulomb_energy(ev["position_bohr"][i, :k], ev["ions"][i, :k, 1])
        assert ker < 0.95 * instant        # the molecule stretched while it charged
        t = ev["ionisation_times"][i, :k]
        q = ev["ions"][i, :k, 1].astype(int)
        assert not t[np.arange(t.shape[1])[None] >= q[:, None]].any()   # zero beyond q
        owned = t[np.arange(t.shape[1])[None] < q[:, None]]
        assert owned.std() > 5 * 41.3     # spread over femtoseconds
        again = explode(ev["position_bohr"][i, :k], q, m, t)
        assert np.abs(again - ev["ions"][i, :k, 2:]).max() < 1e-4 * np.abs(again).max()
    assert cheap.config() != precise.config()


def test_split_by_molecule_holds_whole_molecules_out():
    names = ("H2O", "CH4", "NH3", "CO2", "HCN", "C2H2", "H2CO", "CH3OH", "HCOOH", "N2O",
             "SO2", "OCS", "CS2", "PH3")
    task = ExplosionTask(ExplosionSettings(molecules=names, split_by_molecule=True))
    params = task.space.sample_uniform(700, np.random.default_rng(1))
    codes = task.space.split_codes(params)
    for m in np.unique(params["molecule"]):
        assert len(set(codes[params["molecule"] == m])) == 1
    mixed = ExplosionTask(ExplosionSettings(molecules=names))
    codes = mixed.space.split_codes(params)
    assert len(set(codes[params["molecule"] == 0])) > 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_displaced"):
        ExplosionSettings(max_displaced=0)
    with pytest.raises(ValueError, match="unknown molecule"):
        simulate(ExplosionTask(ExplosionSettings(molecules=("Unobtainium",))), n=2)


def test_detector_drops_ions_keeps_formula_and_two_ions():
    import torch

    from retroscope.core.observe import OnlineObserver

    task = ExplosionTask(ExplosionSettings(molecules=("CH3CH2OH",)))
    _, ev = simulate(task, n=1)
    x = torch.from_numpy(task.network_input(ev["ions"][0]))
    lossy = task.with_config(detection_efficiency=[0.5, 0.5]).observe(train=True)
    observer = OnlineObserver(lossy, seed=0)
    detected = []
    for i in range(400):
        y = observer(x, index=i)
        assert torch.equal(y[:, 0], x[:, 0])                   # the formula stays
        d = y[:, 1] > 0
        assert d.sum() >= 2 and not y[~d, 2:].any()            # missed: no charge, no p
        assert torch.equal(y[d], x[d])                         # caught: untouched
        detected.append(float(d.sum()))
    assert abs(np.mean(detected) - 4.6) < 0.3                  # ~half of 9, at least 2
    assert torch.equal(observer(x, index=7), observer(x, index=7))
    assert task.observe(train=True) is None                    # default: a perfect detector
    noisy = OnlineObserver(task.with_config(resolution_au=1.0).observe(True), seed=1)
    diff = (noisy(x, index=0) - x)[:9, 2:]
    assert 0.5 < float(diff.std()) < 1.5
    dead = task.with_config(dead_pz_au=1e4).observe(True)       # every pair of identical ions
    y = dead(x, torch.Generator().manual_seed(0))
    hydrogens = (x[:, 0] == 1) & (x[:, 1] == 1)
    assert int(((y[:, 1] > 0) & hydrogens).sum()) == 1         # only the first H survives


def test_calibration_sees_what_the_detector_leaves():
    from retroscope.learners.geometry.calibration import observed

    task = ExplosionTask(ExplosionSettings(molecules=("CH3CH2OH",)))
    _, ev = simulate(task, n=20)
    assert observed(task, ev["ions"], 0) is ev["ions"]           # perfect detector
    lossy = task.with_config(detection_efficiency=[0.5, 0.5])
    seen = observed(lossy, ev["ions"], 0)
    assert (seen[..., 1] > 0).sum() < 0.7 * (ev["ions"][..., 1] > 0).sum()
    assert np.array_equal(seen, observed(lossy, ev["ions"], 0))  # seeded
