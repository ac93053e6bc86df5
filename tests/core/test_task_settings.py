"""The tasks' settings dataclasses (retroscope.core.config): the config dicts hashed into a
manifest are those of the hand-written code they replaced, and overrides are validated.

Reference values were computed with the code before the change: the default configs are
written out; overridden ones as sha256 of ``json.dumps(config, sort_keys=True)``."""

from __future__ import annotations

import hashlib
import json

import pytest

from retroscope.core.config import SettingsError
from retroscope.tasks.clouds.task import CloudsTask
from retroscope.tasks.crystal.task import CrystalTask
from retroscope.tasks.diffraction.task import DiffractionTask

DIFFRACTION = {
    "shape": "icosahedron", "radius_nm": [30.0, 160.0],
    "msft": {"wavelength_nm": 13.5, "absorption_length_nm": 12.5, "attenuation": "amplitude",
             "material": "absorption", "refractive_index": [0.89, 0.09], "born": False,
             "n_xy": 96, "n_z": 128, "pad_to": 240, "box_nm": 340.0, "depth_nm": 340.0,
             "detector_px": 128, "dynamic_range_decades": 8.0, "detector": "q",
             "flat_half_angle_deg": 45.0}}
CRYSTAL = {
    "trap": "oxford",
    "ranges": {"n_ca": [30, 350], "v_rf": [170.0, 300.0], "v_end": [1.5, 3.5],
               "eta": [0.24, 0.355], "temperature_mk": [2.0, 20.0], "n_dark": [0, 100]},
    "dark": None, "targets": ["n_ca"], "grid": None,
    "formation": {"ftol": 0.001, "max_fire_steps": 30000, "friction": 0.3,
                  "sympathetic_friction": 0.05, "equilibrate_periods": 4.0,
                  "sample_periods": 8.0, "n_snapshots": 16, "steps_per_period": 40,
                  "initial": "sorted", "backend": "numba"},
    "imaging": {"pixel_um": 4.0, "shape": [160, 112], "sigma0_um": 3.5355339059327373,
                "dof_um": 50.0, "blur_law": "ccmd", "slice_um": 4.0, "focus_um": 0.0,
                "micromotion_phases": 8}}
CLOUDS = {"shape": [128, 128], "max_per_kind": [1, 2, 1, 1], "fluorescence": True,
          "imaging": {"wavelength_nm": 401.0, "object_pixel_um": 8.0}}

OVERRIDDEN = [  # (task, overrides, sha256 of the old code's config)
    (DiffractionTask, {"attenuation": "intensity"},
     "ff3037e398642dceec748be2905ad37b7dbe3cdf649ebfd3eb819d1bdaad965a"),
    (DiffractionTask, {"msft": {"n_xy": 32}},
     "21969b30f20f1e1de0c3675ad130bb8ec6c554d9659b23f27881c8b5aad3466f"),
    (DiffractionTask, {"refractive_index": [0.9, 0.1]},
     "fae50483aeec6c3d0c4ca696068ecf5b637914783025393558f978e617270785"),
    (DiffractionTask, {"radius_nm": [40, 100]},
     "b2387c1dc784dfe9476e9d1097bcd43c5dbd6e23faa03cf73698868bd57afd73"),
    (DiffractionTask, {"msft": {"n_xy": 32, "pad_to": 80}, "n_xy": 48, "detector_px": 64},
     "ccbeaeb8ffec13abe3777f92690c190b29b4aa7097c3f903c57f4f15f1af3eab"),
    (CrystalTask, {"dark": "CaF+", "n_dark": [0, 100]},
     "688c3313e94ebaec1862af9f11f060a574622b22234c187a5cfb96c410d5056a"),
    (CrystalTask, {"grid": "paper"},
     "74e6635ed5557ab2fa58a75af269da12f3e35573f0c279582f417852603cc086"),
    (CrystalTask, {"shape": (48, 40), "pixel_um": 10.0, "n_snapshots": 4},
     "88f187c1e07294e60f90459d07dda7f1bc6876c5a1af5f754e603ea6ce564b4b"),
    (CrystalTask, {"dark": "CaF+", "targets": ["n_ca"]},
     "6374e58e6dcb405dd9b5438211885c9d23f0e7834c114278a5694a5912fbba0f"),
    (CrystalTask, {"ranges": {"n_ca": [10, 60], "eta": [0.25, 0.3]}, "n_ca": [20, 70]},
     "2926c518b212b23056c4c091cbecd565b68226b2538b29c8ba9ba15be3296fa8"),
    (CrystalTask, {"dark": 40, "blur_law": "gaussian", "backend": "torch"},
     "fa8697af408bf4d9206b1b83b589783c626a7e40aebcb62e6fc4843197dc77bc"),
    (CloudsTask, {"max_per_kind": [1, 2, 1]},
     "e2536b0b4790b018fe2da36f37e5dae34f07a468551e0cffd04374969879f24a"),
    (CloudsTask, {"fluorescence": False},
     "0c38fe285052955e16bb8050ec3c1d7480e0f6804400556e266ba6bb0bb60509"),
    (CloudsTask, {"shape": [96, 64], "imaging": {"object_pixel_um": 4.0}},
     "2761466cd326300acee74623e51d3145da7d5447003cf356ebdec2c2cc162e28"),
]


def digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("task, expected", [(DiffractionTask, DIFFRACTION),
                                            (CrystalTask, CRYSTAL), (CloudsTask, CLOUDS)])
def test_default_config_is_unchanged_down_to_key_order(task, expected):
    assert json.dumps(task().config()) == json.dumps(expected)
    views = {CrystalTask: {"input_scale": 0.8, "zoom": False},
             DiffractionTask: {"input_bin": 1}}  # reading settings: never in the manifest
    assert task().view_config() == views.get(task, {})


@pytest.mark.parametrize("task, overrides, expected", OVERRIDDEN,
                         ids=[f"{t.name}-{'-'.join(o)}" for t, o, _ in OVERRIDDEN])
def test_overridden_config_is_unchanged(task, overrides, expected):
    assert digest(task().with_config(**overrides).config()) == expected


def test_small_tasks_keep_their_configs():
    assert digest(CrystalTask().small().config()) == (
        "99adc36f22e363665f565d14453ed34f00c6eef11de5f4b6886bc8f817e12c59")
    assert digest(DiffractionTask().small().config()) == (
        "2619429d4298ccea046bbc6e7a0c4055b2205ec83486bf52c7edc23772e48289")


def test_crystal_dark_rederives_targets_unless_given():
    dark = CrystalTask().with_config(dark="CaF+")
    assert dark.target_names == ("n_ca", "n_dark") and dark.dark == "CaF+"
    assert dark.with_config(dark=None).config() == CRYSTAL
    assert CrystalTask().with_config(dark="CaF+", targets=["n_ca"]).target_names == ("n_ca",)
    assert dark.with_config(pixel_um=5.0).target_names == ("n_ca", "n_dark")


def test_crystal_view_settings_go_to_the_view():
    task = CrystalTask().with_config(input_scale=None, zoom=True, n_ca=[30, 100])
    assert task.view_config() == {"input_scale": None, "zoom": True}
    assert task.input_scale is None and task.zoom is True
    assert task.ranges["n_ca"] == (30, 100) and "input_scale" not in task.config()
    assert CrystalTask().with_config(n_ca=(30, 100)).input_scale == 0.8
    with pytest.raises(SettingsError, match=r"crystal setting input_scale: input_scale must "
                                            r"lie in \[0\.1, 4\]"):
        task.with_config(input_scale=10.0)


@pytest.mark.parametrize("task, overrides", [(t, o) for t, o, _ in OVERRIDDEN]
                         + [(t, {}) for t in (DiffractionTask, CrystalTask, CloudsTask)])
def test_config_rebuilds_an_equal_task(task, overrides):
    """What a worker does from a manifest (JSON in between) and a run from its view."""
    built = task().with_config(**overrides)
    config = json.loads(json.dumps(built.config()))
    again = task().with_config(**config).with_config(**built.view_config())
    assert again.config() == built.config() and again.settings == built.settings
    assert again.view_config() == built.view_config()


@pytest.mark.parametrize("task, key", [(DiffractionTask, "n_xyz"), (CrystalTask, "pixel"),
                                       (CloudsTask, "max_per_type")])
def test_unknown_setting_is_refused(task, key):
    with pytest.raises(SettingsError, match=rf"{task.name}: unknown setting '{key}'.*; known: "):
        task().with_config(**{key: 1})


@pytest.mark.parametrize("task, overrides, message", [
    (DiffractionTask, {"n_xy": "big"}, r"diffraction setting msft\.n_xy: expected an integer"),
    (DiffractionTask, {"attenuation": "linear"}, r"msft\.attenuation: expected one of "),
    (DiffractionTask, {"radius_nm": [1, 2, 3]}, r"radius_nm: expected a list of 2 values"),
    (CrystalTask, {"n_dark": [0, "many"]}, r"crystal setting ranges\.n_dark\[1\]: expected an "
                                           r"integer, got 'many'"),
    (CrystalTask, {"grid": "coarse"}, r"crystal setting grid: expected one of 'paper' or None"),
    (CrystalTask, {"zoom": "yes"}, r"crystal setting zoom: expected true or false"),
    (CrystalTask, {"blur_law": "box"}, r"crystal setting imaging\.blur_law: blur_law must be"),
    (CloudsTask, {"object_pixel_um": "big"}, r"clouds setting imaging\.object_pixel_um: "
                                             r"expected a number, got 'big'"),
    (CloudsTask, {"fluorescence": 0}, r"clouds setting fluorescence: expected true or false"),
])
def test_wrong_type_is_refused_naming_the_field(task, overrides, message):
    with pytest.raises(SettingsError, match=message):
        task().with_config(**overrides)
