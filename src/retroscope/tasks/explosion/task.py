"""The ``explosion`` task: atom positions before a Coulomb explosion from the ions' momenta,
after MOLEXA (Li et al., Nat. Commun. 2026; arXiv 2511.00179).

Simulation settings (:class:`ExplosionSettings`, hashed into a data set's manifest): which g2
molecules, the cheap (instantaneous charging) or precise (charge-up during the pulse) mode,
the conformer model and the charge table. Parameters per event: the molecule, how many atoms
are displaced and by how much, the pulse FWHM (precise mode) and the lab orientation; the
split hash reads only the molecule when ``split_by_molecule`` is set, so whole molecules are
held out for validation and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from retroscope.core.params import Choice, Orientation, ParameterSpace, Scalar
from retroscope.core.task import DemoSettings, GeometryTask, ModelSpec
from retroscope.tasks.explosion.charges import DEFAULT_AUGER_FS, DEFAULT_CHARGE_RANGES
from retroscope.tasks.explosion.events import EVENT_KEYS, ION_COLUMNS, simulate_events
from retroscope.tasks.explosion.geometry import bond_lengths, geometry_errors
from retroscope.tasks.explosion.molecules import ELEMENTS, atomic_numbers, g2_names


#: the demo's molecules: ten small ones of five elements
DEMO_MOLECULES = ("H2O", "NH3", "CH4", "CO2", "HCN", "C2H2", "H2CO", "CH3OH", "OCS", "H2CCl2")
#: what the README's full-scale run reaches, printed after the demo
FULL_SCALE = ("first CPU runs on 106 molecules of 2-7 atoms: per-coordinate MAE 0.17 bohr "
              "on cheap events, 0.28 on precise ones (MOLEXA: 0.536 after 100 epochs on "
              "4 GPUs)")


def _default_molecules() -> tuple[str, ...]:
    """The g2 molecules of 2-7 atoms of MOLEXA's elements (MOLEXA trains on 2-7 atoms and
    tests 8-9)."""
    return g2_names(max_atoms=7)


@dataclass(frozen=True)
class ExplosionSettings:
    """What the stored events depend on."""

    molecules: tuple[str, ...] = field(default_factory=_default_molecules)
    #: "cheap": every charge at t = 0; "precise": unit charges arrive during the pulse
    mode: Literal["cheap", "precise"] = "cheap"
    #: at most this many atoms are displaced from equilibrium (at least one)
    max_displaced: int = 2
    displacement_angstrom: tuple[float, float] = (0.1, 0.3)
    #: Gaussian jitter of every atom (zero-point spread), angstrom per coordinate
    jitter_angstrom: float = 0.05
    pulse_fwhm_fs: tuple[float, float] = (2.0, 30.0)
    auger_fs: float = DEFAULT_AUGER_FS
    #: inclusive (lowest, highest) final charge per element
    charge_ranges: dict = field(default_factory=lambda: dict(DEFAULT_CHARGE_RANGES))
    #: hash only the molecule for the split (whole molecules held out)
    split_by_molecule: bool = False

    def __post_init__(self) -> None:
        if not self.molecules:
            raise ValueError("molecules: give at least one g2 name")
        if self.max_displaced < 1:
            raise ValueError(f"max_displaced must be >= 1, got {self.max_displaced}")
        lo, hi = self.displacement_angstrom
        if not 0 <= lo <= hi:
            raise ValueError(f"displacement_angstrom must be 0 <= low <= high, got {(lo, hi)}")
        lo, hi = self.pulse_fwhm_fs
        if not 0 <= lo <= hi:
            raise ValueError(f"pulse_fwhm_fs must be 0 <= low <= high, got {(lo, hi)}")
        if self.jitter_angstrom < 0 or self.auger_fs < 0:
            raise ValueError("jitter_angstrom and auger_fs must be >= 0")
        missing = sorted(set(ELEMENTS) - set(self.charge_ranges))
        if missing:
            raise ValueError(f"charge_ranges lacks {missing}")

    @property
    def max_charge(self) -> int:
        """The highest charge any element can reach (the width of the stored times)."""
        z = dict(zip(ELEMENTS, atomic_numbers(ELEMENTS)))
        return int(max(min(int(hi), int(z[s])) for s, (_, hi) in self.charge_ranges.items()
                       if s in z))


@dataclass(frozen=True)
class ExplosionView:
    """The detector drawn on training events (:mod:`.detector`; recorded in a run, not in
    the data): per-ion detection efficiency range, momentum resolution (a.u., and relative),
    and the dead time as a p_z difference (a.u.). The defaults catch every ion exactly.
    ``regressor``: train the same network as a deterministic regressor (the
    ``geometry_regressor`` learner, a baseline) instead of the diffusion model."""

    detection_efficiency: tuple[float, float] = (1.0, 1.0)
    resolution_au: float = 0.0
    relative_resolution: float = 0.0
    dead_pz_au: float = 0.0
    regressor: bool = False

    def __post_init__(self) -> None:
        lo, hi = self.detection_efficiency
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"detection_efficiency must be 0 <= low <= high <= 1, got {(lo, hi)}")
        if min(self.resolution_au, self.relative_resolution, self.dead_pz_au) < 0:
            raise ValueError("resolutions and dead_pz_au must be >= 0")

    @property
    def perfect(self) -> bool:
        return (self.detection_efficiency == (1.0, 1.0) and self.resolution_au == 0
                and self.relative_resolution == 0 and self.dead_pz_au == 0)


class ExplosionTask(GeometryTask):
    """Molecular geometry from the 3D momenta of the ions of one Coulomb explosion."""

    name = "explosion"
    title = "Coulomb-explosion imaging"
    paper = "Li et al., Nat. Commun. (2026), doi:10.1038/s41467-026-70160-5 (MOLEXA)"
    infers = "the position of every atom (bohr) before the blast, in the momentum frame"
    observable = "ions"
    label_keys = tuple(k for k in EVENT_KEYS if k != "ions")
    positions_label = "position_bohr"
    position_unit = "bohr"
    model = ModelSpec("ion_transformer")
    #: the columns of one event's rows (the stored observable and what files give)
    columns = ION_COLUMNS

    def __init__(self, settings: ExplosionSettings | None = None,
                 view: ExplosionView | None = None) -> None:
        self.settings = settings or ExplosionSettings()
        self.view = view or ExplosionView()
        if self.view.regressor:
            self.learner = "geometry_regressor"
        s = self.settings
        self.space = ParameterSpace(
            (Choice("molecule", tuple(s.molecules), doc="g2 name"),
             Scalar("displaced_atoms", "count", 1, s.max_displaced, integer=True,
                    doc="atoms moved from equilibrium"),
             Scalar("displacement_angstrom", "angstrom", *s.displacement_angstrom,
                    doc="how far each displaced atom moved"),
             Scalar("pulse_fwhm_fs", "fs", *s.pulse_fwhm_fs,
                    doc="X-ray pulse FWHM (precise mode)"),
             Orientation("orientation", doc="lab orientation of the molecule")),
            split_by=("molecule",) if s.split_by_molecule else ())

    def from_settings(self, settings: ExplosionSettings, view=None) -> ExplosionTask:
        return type(self)(settings, view)

    def with_molecules(self, names) -> ExplosionTask:
        """The task with another molecule list (e.g. held-out molecules)."""
        return self.from_settings(replace(self.settings, molecules=tuple(names)), self.view)

    def observe(self, train: bool):
        """The detector (:class:`.detector.IonDetector`) on training events, as the view
        sets it; None when it catches every ion exactly."""
        if not train or self.view.perfect:
            return None
        from retroscope.tasks.explosion.detector import IonDetector

        v = self.view
        return IonDetector(tuple(v.detection_efficiency), v.resolution_au,
                           v.relative_resolution, v.dead_pz_au)

    def simulate(self, params, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = self.settings
        names = [s.molecules[int(i)] for i in params["molecule"]]
        return simulate_events(names, params["displaced_atoms"],
                               params["displacement_angstrom"], params["pulse_fwhm_fs"],
                               params["orientation"], rng, precise=s.mode == "precise",
                               auger_fs=s.auger_fs, jitter_angstrom=s.jitter_angstrom,
                               charge_ranges=s.charge_ranges, max_charge=s.max_charge)

    # -- reading answers ------------------------------------------------------------------
    def token_names(self, tokens: np.ndarray) -> list[str]:
        """The element symbol of every real ion of one event (N, 5)."""
        from ase.data import chemical_symbols

        return [chemical_symbols[int(round(t[0]))] for t in tokens if t[0] > 0]

    def metrics(self, true, pred) -> dict[str, np.ndarray]:
        """Per event: mean |bond length error| (bohr), mean |bond angle error| (deg), share
        of atoms within half their shortest bond (bonds of the true geometry)."""
        z = np.rint(true["tokens"][..., 0]).astype(int)
        errors = geometry_errors(z, true["position"], pred["position"])
        return {k: v[np.isfinite(v)] for k, v in errors.items()}

    def plots(self, true, pred, out_dir, metrics: dict, reference=None) -> list:
        """Predicted against true bond lengths (bonds of the true geometries)."""
        from retroscope import plots

        z = np.rint(true["tokens"][..., 0]).astype(int)
        t, p = bond_lengths(z, true["position"], pred["position"])
        if not len(t):
            return []
        return [plots.predicted_vs_true(t[:, None], p[:, None], ["bond length"], ["bohr"],
                                        Path(out_dir) / "bond_lengths.png")]

    def summary_metrics(self, true, pred) -> dict:
        errors = self.metrics(true, pred)
        share = errors["atoms_within_half_bond"]
        return {"events_all_atoms_within_half_bond": float(np.mean(share == 1.0))
                if len(share) else float("nan")}

    # -- measured events ------------------------------------------------------------------
    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        from retroscope.tasks.explosion.readers import check_settings

        return check_settings(settings, source)

    def read_experimental(self, paths, settings: dict | None = None):
        """Events from CSV or HDF5 files (:mod:`.readers`): tokens (k, 5) per event with
        the atoms of its formula that were not detected as query rows."""
        from retroscope.tasks.explosion.readers import read_events

        return read_events(paths, settings)

    def frame_columns(self, context: dict) -> dict:
        return {k: context[k] for k in ("formula", "momentum_imbalance", "imbalance_flag")
                if k in context}

    def write_geometry(self, path: Path, names: list[str], positions: np.ndarray,
                       comment: str = "") -> Path:
        """An XYZ file (angstrom) of one predicted geometry."""
        from retroscope.io.atomic import atomic_write
        from retroscope.tasks.explosion.molecules import BOHR_PER_ANGSTROM

        lines = [str(len(names)), comment.replace("\n", " ")]
        lines += [f"{n:<2s} {x / BOHR_PER_ANGSTROM:12.6f} {y / BOHR_PER_ANGSTROM:12.6f} "
                  f"{z / BOHR_PER_ANGSTROM:12.6f}" for n, (x, y, z) in zip(names, positions)]
        path = Path(path)
        path = path if path.suffix == ".xyz" else path.with_name(path.name + ".xyz")
        atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
        return path

    def baseline(self, **kwargs):
        """The forward fit of positions to the momenta (:mod:`.baseline`)."""
        from retroscope.tasks.explosion.baseline import ForwardFitBaseline

        return ForwardFitBaseline(self, **kwargs)

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        """14,000 cheap events of ten small molecules, 3 minutes of training, the test split
        scored, CSV and HDF5 event files (one event with a hydrogen missed, a bad file)
        predicted, XYZ files written."""
        return DemoSettings(n=14000, shard_size=2000, epochs=40, train_minutes=3.0,
                            train={"batch_size": 128, "lr": 2e-3}, n_files=4,
                            task_config={"molecules": list(DEMO_MOLECULES)},
                            full_scale=FULL_SCALE)

    def demo_files(self, test, files_dir, n: int):
        from retroscope.tasks.explosion.demo import demo_event_files

        return demo_event_files(self, test, files_dir, n)
