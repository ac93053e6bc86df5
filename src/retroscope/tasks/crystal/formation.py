"""Crystal formation: energy minimisation, then thermal sampling, in physical units.

:func:`form_crystal` follows the force balance of Allsopp et al. (2025), Eq. (1): pseudopotential
trap + Coulomb repulsion relaxed to a minimum (FIRE) from a random start inside the cold-fluid
spheroid, then a Langevin run at the secular temperature, where laser-cooling friction and
stochastic heating balance, records the positions an exposure integrates over. Radial
micromotion x(t) = x_s [1 + (q/2) cos(Omega t)], y in antiphase, is applied to each snapshot
at evenly spaced RF phases when an image is rendered (:mod:`.render`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from retroscope.tasks.crystal import dynamics, theory
from retroscope.tasks.crystal.trap import (
    OperatingPoint,
    Species,
    TrapError,
    Units,
    get_species,
    get_trap,
    spring_constants,
)


#: secular temperature of a crystal whose parameters do not sample it (mK)
DEFAULT_TEMPERATURE_MK = 10.0


@dataclass(frozen=True)
class FormationConfig:
    """Numerical settings of crystal formation (dimensionless times in 1/omega_z of Ca+).

    ftol: FIRE stops when the largest force is below ftol (units k_z l0);
    friction: laser-cooling damping rate of the fluorescing ions (units omega_z), chosen for
    fast thermalisation: the stationary distribution depends only on the temperature;
    sympathetic_friction: the same for dark ions, which are cooled only through the Coulomb
    coupling; equilibrate_periods / sample_periods: Langevin time before and during the
    exposure, in periods of the fastest collective motion (the plasma frequency
    sqrt((2 k_r + k_z)/m), above every secular frequency); n_snapshots: positions recorded
    during the exposure; steps_per_period: integration steps per such period;
    backend: "numba" (CPU) or "torch" (batched, CUDA when present; :func:`form_crystals`).
    """

    ftol: float = 1e-3
    max_fire_steps: int = 30000
    friction: float = 0.3
    sympathetic_friction: float = 0.05
    equilibrate_periods: float = 4.0
    sample_periods: float = 8.0
    n_snapshots: int = 16
    steps_per_period: int = 40
    initial: str = "sorted"  # "sorted": lighter ions start inside; "random": mixed start
    backend: str = "numba"  # "numba" (CPU, one crystal at a time) or "torch" (batched, CUDA)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Crystal:
    """A formed crystal: equilibrium and sampled positions in micrometres, axial along z."""

    species: list[Species]
    kinds: np.ndarray  # (N,) index into species
    equilibrium_um: np.ndarray  # (N, 3)
    snapshots_um: np.ndarray  # (S, N, 3)
    q: np.ndarray  # (N,) Mathieu q of each ion (radial micromotion amplitude (q/2) r)
    fire_steps: int
    residual_force: float

    @property
    def fluorescing(self) -> np.ndarray:
        return np.array([self.species[k].laser_cooled for k in self.kinds])


def composition_arrays(composition: dict) -> tuple[list[Species], np.ndarray]:
    species, kinds = [], []
    for key, count in composition.items():
        count = int(count)
        if count < 0:
            raise TrapError(f"number of {key} ions must be >= 0, got {count}")
        if count == 0:
            continue
        species.append(get_species(key))
        kinds.extend([len(species) - 1] * count)
    if not kinds:
        raise TrapError("a crystal needs at least one ion")
    return species, np.asarray(kinds, dtype=np.int64)


def form_crystal(op: OperatingPoint, composition: dict, temperature_k: float,
                 rng: np.random.Generator, config: FormationConfig | None = None,
                 reference: Species | str = "Ca+") -> Crystal:
    """Form a crystal of ``composition`` ({species name or mass in u: count}) at ``op``."""
    cfg = config or FormationConfig()
    ref = get_species(reference)
    species, kinds = composition_arrays(composition)
    if not (np.isfinite(temperature_k) and temperature_k >= 0):
        raise TrapError(f"temperature must be >= 0 K, got {temperature_k}")
    kr_s, kz_s = spring_constants(op, species, ref)
    kr, kz = kr_s[kinds], kz_s[kinds]
    charge = np.array([species[k].charge_e / ref.charge_e for k in kinds], dtype=np.float64)
    mass = np.array([species[k].mass_u / ref.mass_u for k in kinds], dtype=np.float64)
    units = Units.of(op, ref)

    start = _initial_positions(kr, kz, charge, rng, cfg.initial)
    eq, steps, fmax = dynamics.fire_minimise(start, kr, kz, charge, ftol=cfg.ftol,
                                             max_steps=cfg.max_fire_steps)
    t = units.temperature(temperature_k)
    if t > 0 and cfg.n_snapshots > 0:
        omega_max = float(np.sqrt(np.max(np.concatenate([kr, kz]) / np.tile(mass, 2))))
        omega_plasma = float(np.sqrt(np.max((2 * kr + kz) / mass)))
        period = 2 * np.pi / max(omega_max, omega_plasma)
        dt = period / cfg.steps_per_period
        friction = np.where([species[k].laser_cooled for k in kinds], cfg.friction,
                            cfg.sympathetic_friction)
        every = max(1, int(round(cfg.sample_periods * cfg.steps_per_period / cfg.n_snapshots)))
        n_eq = int(round(cfg.equilibrate_periods * cfg.steps_per_period))
        snaps, _ = dynamics.langevin_sample(eq, kr, kz, charge, mass, friction, t, dt, n_eq,
                                            cfg.n_snapshots, every, rng)
    else:
        snaps = eq[None].copy()
    q = np.array([op.q(species[k]) for k in kinds])
    scale = units.length_m * 1e6
    return Crystal(species, kinds, eq * scale, snaps * scale, q, steps, fmax)


def form_crystals(ops: list[OperatingPoint], compositions: list[dict],
                  temperatures_k: list[float], rng: np.random.Generator,
                  config: FormationConfig | None = None, reference: Species | str = "Ca+",
                  device: str | None = None) -> list[Crystal]:
    """Form many crystals: one by one with numba, or as one padded batch with torch
    (``config.backend == "torch"``, on CUDA when available), which is how a GPU campaign
    amortises the O(N^2) Coulomb sums. The physics and settings are those of
    :func:`form_crystal`; the random draws differ between the backends."""
    cfg = config or FormationConfig()
    if cfg.backend == "numba":
        return [form_crystal(op, comp, t, rng, cfg, reference)
                for op, comp, t in zip(ops, compositions, temperatures_k)]
    if cfg.backend != "torch":
        raise ValueError(f"backend must be 'numba' or 'torch', got {cfg.backend!r}")
    import torch

    from retroscope.tasks.crystal import torch_md

    ref = get_species(reference)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    setups = []
    for op, comp, t in zip(ops, compositions, temperatures_k):
        species, kinds = composition_arrays(comp)
        kr_s, kz_s = spring_constants(op, species, ref)
        setups.append({
            "species": species, "kinds": kinds, "kr": kr_s[kinds], "kz": kz_s[kinds],
            "charge": np.array([species[k].charge_e / ref.charge_e for k in kinds], float),
            "mass": np.array([species[k].mass_u / ref.mass_u for k in kinds], float),
            "cooled": np.array([species[k].laser_cooled for k in kinds]),
            "units": Units.of(op, ref), "temp_k": float(t), "op": op})
    b, n = len(setups), max(len(s["kinds"]) for s in setups)

    def padded(key, fill):
        out = np.full((b, n), fill, dtype=np.float64)
        for i, s in enumerate(setups):
            out[i, :len(s[key])] = s[key]
        return torch.tensor(out, device=dev)

    kr, kz, charge, mass = (padded(k, 1.0) for k in ("kr", "kz", "charge", "mass"))
    mask = padded("kinds", -1) >= 0
    start = np.zeros((b, n, 3))
    for i, s in enumerate(setups):
        start[i, :len(s["kinds"])] = _initial_positions(s["kr"], s["kz"], s["charge"], rng,
                                                        cfg.initial)
        start[i, len(s["kinds"]):] = 1e3 * (1 + np.arange(n - len(s["kinds"])))[:, None]
    eq, steps, fmax = torch_md.fire_minimise(torch.tensor(start, device=dev), kr, kz, charge,
                                             mask, ftol=cfg.ftol, max_steps=cfg.max_fire_steps)
    temps = torch.tensor([s["units"].temperature(s["temp_k"]) for s in setups], device=dev,
                         dtype=torch.float64)
    if cfg.n_snapshots > 0 and bool((temps > 0).all()):
        omega = torch.sqrt(torch.maximum((torch.stack([kr, kz], -1) / mass[..., None])
                                         .amax(-1), (2 * kr + kz) / mass) * mask).amax(-1)
        dt = 2 * np.pi / omega / cfg.steps_per_period
        cooled = padded("cooled", 0.0) > 0
        friction = torch.where(cooled, torch.full_like(kr, cfg.friction),
                               torch.full_like(kr, cfg.sympathetic_friction))
        every = max(1, int(round(cfg.sample_periods * cfg.steps_per_period / cfg.n_snapshots)))
        n_eq = int(round(cfg.equilibrate_periods * cfg.steps_per_period))
        gen = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
        snaps = torch_md.langevin_sample(eq, kr, kz, charge, mask, mass, friction, temps, dt,
                                         n_eq, cfg.n_snapshots, every, gen)
    else:
        snaps = eq[None]
    eq, snaps = eq.cpu().numpy(), snaps.cpu().numpy()
    crystals = []
    for i, s in enumerate(setups):
        k = len(s["kinds"])
        scale = s["units"].length_m * 1e6
        q = np.array([s["op"].q(s["species"][j]) for j in s["kinds"]])
        crystals.append(Crystal(s["species"], s["kinds"], eq[i, :k] * scale,
                                snaps[:, i, :k] * scale, q, int(steps[i]), float(fmax[i])))
    return crystals


def _initial_positions(kr, kz, charge, rng, mode: str) -> np.ndarray:
    """Uniform random points in the cold-fluid spheroid of the whole crystal (slightly
    enlarged). ``sorted`` hands the innermost points (by cylindrical radius) to the ions with
    the stiffest radial confinement (the lightest), as they end up in equilibrium."""
    n = len(kr)
    sph = theory.spheroid(n, float(np.mean(kr)), float(np.mean(kz)), float(np.mean(charge)))
    r_max, z_max = 1.1 * sph["radius"], 1.1 * sph["half_length"]
    pts = np.empty((0, 3))
    while len(pts) < n:
        p = rng.uniform(-1, 1, size=(2 * n + 8, 3))
        pts = np.concatenate([pts, p[np.sum(p * p, axis=1) <= 1]])
    pts = pts[:n] * np.array([r_max, r_max, z_max])
    if mode == "sorted":
        order_pts = np.argsort(np.hypot(pts[:, 0], pts[:, 1]), kind="stable")
        order_ions = np.argsort(-kr / kz, kind="stable")
        out = np.empty_like(pts)
        out[order_ions] = pts[order_pts]
        return out
    if mode == "random":
        return pts
    raise ValueError(f"initial must be 'sorted' or 'random', got {mode!r}")


def equilibrium_positions(n_ions: int, v_rf: float, v_end: float, eta: float,
                          trap: str = "oxford", species: str | float = "Ca+",
                          dark: dict | None = None, seed: int = 0,
                          ftol: float = 1e-5) -> np.ndarray:
    """Zero-temperature ion positions in micrometres (N, 3), axial along z, trap centre at 0.

    ``n_ions`` ions of ``species`` (Ca+ by default) plus the optional dark ions ``dark``
    ({"CaF+": 20} or {59.0: 20}); V (peak-to-peak RF amplitude, V), U (endcap, V) and eta
    (geometric factor kappa) in the conventions of :mod:`.trap`. Rows follow the composition
    order (the ``n_ions`` first). The length and width of the crystal are ``np.ptp`` of z and x.
    """
    op = OperatingPoint(get_trap(trap), float(v_rf), float(v_end), float(eta))
    composition = {species: int(n_ions), **(dark or {})}
    crystal = form_crystal(op, composition, 0.0, np.random.default_rng(seed),
                           FormationConfig(ftol=ftol, n_snapshots=0, max_fire_steps=100000))
    return crystal.equilibrium_um
