"""retroscope.core.config: settings dataclasses to JSON and back, validated overrides."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from retroscope.core.config import (
    SettingsError,
    apply_overrides,
    merge_settings,
    settings_dict,
)


@dataclass(frozen=True)
class Optics:
    pixel_um: float = 4.0
    shape: tuple[int, int] = (128, 96)
    law: Literal["ccmd", "gaussian"] = "ccmd"

    def __post_init__(self) -> None:
        if not self.pixel_um > 0:
            raise ValueError(f"pixel_um must be positive, got {self.pixel_um}")


@dataclass(frozen=True)
class Numerics:
    steps: int = 40
    tol: float = 1e-3
    law: str = "fire"  # also in Optics: ambiguous as a flat key


@dataclass(frozen=True)
class Settings:
    name: str = "oxford"
    radius_nm: tuple[float, float] = (30.0, 160.0)
    index: complex = complex(0.89, 0.09)
    born: bool = False
    dark: str | None = None
    targets: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)
    anything: list = field(default_factory=list)  # not interpreted: any value
    optics: Optics = Optics()
    numerics: Numerics = Numerics()


@dataclass(frozen=True)
class View:
    scale: float | None = 0.8
    zoom: bool = False


def merge(**overrides):
    return merge_settings(Settings(), overrides, owner="toy")


# -- settings_dict ----------------------------------------------------------------------------
def test_settings_dict_is_json_with_lists_and_complex_pairs():
    d = settings_dict(Settings())
    assert d["radius_nm"] == [30.0, 160.0] and d["index"] == [0.89, 0.09]
    assert d["optics"] == {"pixel_um": 4.0, "shape": [128, 96], "law": "ccmd"}
    assert d["targets"] is None and d["numerics"]["steps"] == 40
    assert json.loads(json.dumps(d)) == d
    assert list(d) == ["name", "radius_nm", "index", "born", "dark", "targets", "extra",
                       "anything", "optics", "numerics"]


def test_settings_dict_uses_a_dataclass_own_to_dict():
    @dataclass(frozen=True)
    class Custom:
        a: int = 1

        def to_dict(self) -> dict:
            return {"a": self.a, "b": 2}

    @dataclass(frozen=True)
    class Outer:
        inner: Custom = Custom()

    assert settings_dict(Outer()) == {"inner": {"a": 1, "b": 2}}


def test_round_trip_from_own_dict_is_equal():
    s = merge(dark="CaF+", targets=["n_ca"], index=[1.0, -0.5], pixel_um=10, steps=4,
              extra={"k": 1})
    again = merge_settings(Settings(), settings_dict(s), owner="toy")
    assert again == s and isinstance(again.index, complex)
    assert again.optics.shape == (128, 96) and again.targets == ("n_ca",)


# -- keys -------------------------------------------------------------------------------------
def test_nested_dict_and_flat_key_reach_the_nested_field():
    assert merge(optics={"pixel_um": 10}).optics.pixel_um == 10.0
    assert merge(pixel_um=10).optics == Optics(pixel_um=10.0)
    assert merge(steps=4).numerics.steps == 4
    both = merge(numerics={"steps": 4, "tol": 0.1}, steps=8)  # the flat key wins
    assert both.numerics == Numerics(steps=8, tol=0.1)
    assert merge().optics is Settings().optics


def test_flat_key_of_two_nested_dataclasses_is_ambiguous():
    with pytest.raises(SettingsError, match=r"toy: ambiguous setting 'law'.*optics\.law and "
                                            r"numerics\.law"):
        merge(law="gaussian")
    assert merge(optics={"law": "gaussian"}).optics.law == "gaussian"


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(SettingsError, match=r"toy: unknown setting 'stesp' \(did you mean "
                                            r"'numerics\.steps'\?\); known: name, "
                                            r".*optics\.pixel_um"):
        merge(stesp=3)
    with pytest.raises(SettingsError, match=r"unknown setting 'optics\.size'"):
        merge(optics={"size": 3})


# -- types ------------------------------------------------------------------------------------
def test_numbers_are_coerced_and_refused_with_the_path():
    s = merge(radius_nm=[40, 100], steps=3, tol=1)
    assert s.radius_nm == (40.0, 100.0) and isinstance(s.radius_nm[0], float)
    assert s.numerics.tol == 1.0 and isinstance(s.numerics.tol, float)
    with pytest.raises(SettingsError, match=r"toy setting optics\.pixel_um: expected a number, "
                                            r"got 'big'"):
        merge(pixel_um="big")
    with pytest.raises(SettingsError, match=r"numerics\.steps: expected an integer, got 2\.5"):
        merge(steps=2.5)
    with pytest.raises(SettingsError, match=r"numerics\.steps: expected an integer, got True"):
        merge(steps=True)
    with pytest.raises(SettingsError, match=r"numerics\.tol: expected a number, got False"):
        merge(tol=False)


def test_bool_and_str_are_strict():
    assert merge(born=True).born is True
    with pytest.raises(SettingsError, match=r"toy setting born: expected true or false, got 1"):
        merge(born=1)
    with pytest.raises(SettingsError, match=r"toy setting name: expected a string, got 3"):
        merge(name=3)


def test_complex_from_a_number_or_a_pair():
    assert merge(index=[0.9, 0.1]).index == complex(0.9, 0.1)
    assert merge(index=1).index == complex(1, 0)
    assert merge(index=(1.0, 2.0)).index == complex(1, 2)
    with pytest.raises(SettingsError, match=r"index: expected a complex number or \[re, im\]"):
        merge(index=[1.0, 2.0, 3.0])
    with pytest.raises(SettingsError, match=r"index: expected a complex"):
        merge(index="1+2j")


def test_literal_value_must_be_listed():
    assert merge(optics={"law": "gaussian"}).optics.law == "gaussian"
    with pytest.raises(SettingsError, match=r"toy setting optics\.law: expected one of 'ccmd', "
                                            r"'gaussian', got 'lorentz'"):
        merge(optics={"law": "lorentz"})


def test_tuples_fixed_and_variable_length():
    assert merge(shape=[48, 40]).optics.shape == (48, 40)
    with pytest.raises(SettingsError, match=r"optics\.shape: expected a list of 2 values, "
                                            r"got \[1, 2, 3\]"):
        merge(shape=[1, 2, 3])
    with pytest.raises(SettingsError, match=r"optics\.shape\[1\]: expected an integer, got 4\.5"):
        merge(shape=[4, 4.5])
    with pytest.raises(SettingsError, match=r"radius_nm: expected a list of 2 values, got 3"):
        merge(radius_nm=3)
    assert merge(targets=["a", "b", "c"]).targets == ("a", "b", "c")
    with pytest.raises(SettingsError, match=r"targets\[1\]: expected a string, got 3"):
        merge(targets=["a", 3])


def test_optional_accepts_none_or_the_type():
    assert merge(dark="CaF+").dark == "CaF+" and merge(dark=None).dark is None
    assert merge(targets=None).targets is None
    with pytest.raises(SettingsError, match=r"toy setting dark: expected a string or None, "
                                            r"got 40"):
        merge(dark=40)


def test_dict_and_uninterpreted_annotations():
    assert merge(extra={"a": 1}).extra == {"a": 1}
    with pytest.raises(SettingsError, match=r"extra: expected a dict, got \[1\]"):
        merge(extra=[1])
    assert merge(anything=(1, "x")).anything == (1, "x")  # list[...] is not interpreted
    with pytest.raises(SettingsError, match=r"optics: expected a dict of Optics settings"):
        merge(optics="wide")


def test_post_init_errors_name_owner_and_path():
    with pytest.raises(SettingsError, match=r"toy setting optics\.pixel_um: pixel_um must be "
                                            r"positive"):
        merge(pixel_um=-1.0)


# -- settings and view ------------------------------------------------------------------------
def test_overrides_split_between_settings_and_view():
    settings, view = apply_overrides(Settings(), View(), {"zoom": True, "steps": 2}, "toy")
    assert view == View(zoom=True) and settings.numerics.steps == 2
    same_settings, view = apply_overrides(Settings(), View(), {"scale": None}, "toy")
    assert view.scale is None and same_settings == Settings()
    with pytest.raises(SettingsError, match=r"toy setting zoom: expected true or false"):
        apply_overrides(Settings(), View(), {"zoom": "yes"}, "toy")


def test_unknown_in_both_lists_the_names_of_both():
    with pytest.raises(SettingsError, match=r"toy: unknown setting 'zom' \(did you mean 'zoom'"
                                            r"\?\); known: name, .*numerics\.law, scale, zoom$"):
        apply_overrides(Settings(), View(), {"zom": True}, "toy")


def test_missing_settings_or_view_know_no_key():
    settings, view = apply_overrides(Settings(), None, {"born": True}, "toy")
    assert settings.born and view is None
    with pytest.raises(SettingsError, match=r"toy: unknown setting 'zoom'"):
        apply_overrides(Settings(), None, {"zoom": True}, "toy")
    with pytest.raises(SettingsError, match=r"toy: unknown setting 'born'; known: scale, zoom"):
        apply_overrides(None, View(), {"born": True}, "toy")
    assert apply_overrides(None, None, {}, "toy") == (None, None)
