"""Coulomb explosion of point charges: from positions and charges to asymptotic momenta.

Atomic units throughout (bohr, hartree, a.u. of time = 24.19 as, of momentum = 1.993e-24
kg m/s); masses in u are converted with 1 u = 1822.888 m_e. Each ion i moves by

    m_i d^2 r_i / dt^2 = sum_{j != i} q_i(t) q_j(t) (r_i - r_j) / |r_i - r_j|^3,

from rest. In the cheap mode every charge is there at t = 0; in the precise mode (charge-up)
atom i's charge q_i(t) counts its unit charges whose ionisation time has passed
(:mod:`.charges`), so neutral atoms stay put and the molecule stretches while it charges.
The total energy E = sum p^2 / 2m + sum_{i<j} q_i q_j / r_ij is conserved between charge
jumps; each jump adds the change of the Coulomb energy at that instant, so the final kinetic
energy equals the sum of those jumps (instantaneous charging: the Coulomb energy at t = 0).

The batched integrator (compiled with numba, one event after another on one thread, float64
on a padded batch of events x atoms) gives each event its own clock: steps of at most
``dt_charging_au`` (landing exactly on every ionisation time) while its charges change, then
``dt0_au`` growing by ``growth`` per step up to ``t_final_au`` after the first ionisation
(156 steps for 0.5 a.u., x1.08, 1e6 a.u.), and the tail of the impulse added as
p_inf = p(T) + F(T) T (the force falls as 1/t^2 once the ions coast). Each step is velocity
Verlet (kick-drift-kick), by default composed into Yoshida's fourth-order scheme (three
Verlet sub-steps of weights w1, w0, w1; H. Yoshida, Phys. Lett. A 150, 262 (1990)): with
steps growing geometrically the error of plain Verlet is set by the growth, about
0.2 (growth - 1)^2 of the energy (1.2e-3 at x1.08), and the fourth-order scheme brings it to
~1e-5 for three force evaluations per step. :func:`explode_reference` integrates one event
with scipy's DOP853 at tight tolerances, the independent check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from retroscope.tasks.explosion.molecules import ELECTRON_MASSES_PER_U

#: integrator defaults (a.u. of time)
T_FINAL_AU = 1e6
DT0_AU = 0.5
GROWTH = 1.08
DT_CHARGING_AU = 1.0
_CBRT2 = 2.0 ** (1.0 / 3.0)
#: sub-step weights of one step: velocity Verlet (order 2), Yoshida's composition (order 4)
SUBSTEPS = {2: np.array([1.0]),
            4: np.array([1.0, -_CBRT2, 1.0]) / np.array([2.0 - _CBRT2] * 3)}


@dataclass(frozen=True)
class Explosion:
    """A batch of integrated events: asymptotic momenta (B, N, 3) in a.u., the energy the
    charging put in (B,) in hartree (= final kinetic energy up to integration error), and the
    number of steps the longest event took."""

    momenta_au: np.ndarray
    deposited_energy_hartree: np.ndarray
    steps: int


def kinetic_energy(momenta_au: np.ndarray, masses_u: np.ndarray) -> np.ndarray:
    """sum p^2 / 2m over the atoms (the last-but-one axis), hartree; masses in u."""
    m = np.asarray(masses_u, float) * ELECTRON_MASSES_PER_U
    p = np.asarray(momenta_au, float)
    return ((p * p).sum(-1) / (2.0 * m)).sum(-1)


def coulomb_energy(positions_bohr: np.ndarray, charges) -> np.ndarray | float:
    """sum_{i<j} q_i q_j / r_ij (hartree) of one event (N, 3) or a batch (B, N, 3)."""
    r = np.asarray(positions_bohr, float)
    q = np.asarray(charges, float)
    if r.ndim == 2:
        return float(_forces(r, q, np.zeros_like(r)))
    f = np.zeros(r.shape[1:])
    return np.array([_forces(r[b], q[b], f) for b in range(len(r))])


@numba.njit(cache=True)
def _forces(r, q, f):
    """Coulomb forces on every atom of one event into f (N, 3); returns the energy."""
    n = r.shape[0]
    f[:] = 0.0
    u = 0.0
    for i in range(n):
        if q[i] == 0.0:
            continue
        for j in range(i + 1, n):
            if q[j] == 0.0:
                continue
            dx = r[i, 0] - r[j, 0]
            dy = r[i, 1] - r[j, 1]
            dz = r[i, 2] - r[j, 2]
            inv_r = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
            qq = q[i] * q[j]
            w = qq * inv_r * inv_r * inv_r
            f[i, 0] += w * dx
            f[i, 1] += w * dy
            f[i, 2] += w * dz
            f[j, 0] -= w * dx
            f[j, 1] -= w * dy
            f[j, 2] -= w * dz
            u += qq * inv_r
    return u


@numba.njit(cache=True)
def _explode_one(r, m, t_ev, atom_ev, n_ev, t_final, dt0, growth, dt_charging, weights,
                 p):
    """Integrate one event in place (r: positions, p: momenta out); returns the energy the
    charge jumps put in and the number of steps."""
    n = r.shape[0]
    q = np.zeros(n)
    f = np.zeros((n, 3))
    p[:] = 0.0
    t = t_ev[0] if n_ev > 0 else 0.0
    t_end = t + t_final
    k = 0
    deposited = 0.0
    u = 0.0
    since_charge = 0
    steps = 0
    while True:
        jumped = False
        while k < n_ev and t_ev[k] <= t + 1e-9 * max(1.0, abs(t)):
            q[atom_ev[k]] += 1.0
            k += 1
            jumped = True
        if jumped:
            u_new = _forces(r, q, f)
            deposited += u_new - u
            u = u_new
            since_charge = 0
        if t >= t_end:
            break
        if k < n_ev:
            dt = min(dt_charging, t_ev[k] - t)
        else:
            dt = dt0 * growth ** since_charge
            since_charge += 1
        dt = min(dt, t_end - t)
        for w in weights:
            h = w * dt
            for i in range(n):
                for c in range(3):
                    p[i, c] += 0.5 * h * f[i, c]
                    r[i, c] += h * p[i, c] / m[i]
            u = _forces(r, q, f)
            for i in range(n):
                for c in range(3):
                    p[i, c] += 0.5 * h * f[i, c]
        t += dt
        if t_end - t < 1e-12 * t_end:
            t = t_end
        steps += 1
    for i in range(n):
        for c in range(3):
            p[i, c] += f[i, c] * t_final
    return deposited, steps


@numba.njit(cache=True)
def _explode_all(r, m, t_ev, atom_ev, n_ev, t_final, dt0, growth, dt_charging, weights, p,
                 deposited):
    most = 0
    for b in range(r.shape[0]):
        deposited[b], steps = _explode_one(r[b], m[b], t_ev[b], atom_ev[b], n_ev[b], t_final,
                                           dt0, growth, dt_charging, weights, p[b])
        most = max(most, steps)
    return most


def _events(charges: np.ndarray, times: np.ndarray | None):
    """Every event's unit-charge arrivals sorted in time: times (B, K) padded with +inf,
    the atom each belongs to (B, K), and the count per event (B,)."""
    b, n = charges.shape
    q = charges.astype(np.int64)
    width = max(int(q.max(initial=0)), 1)
    unit = np.arange(width)
    owned = unit[None, None, :] < q[:, :, None]
    if times is None:
        t = np.zeros((b, n, width))
    else:
        t = np.asarray(times, float)
        if t.ndim != 3 or t.shape[:2] != (b, n) or t.shape[2] < width:
            raise ValueError(f"ionisation_times_au must have shape (events, atoms, >= max "
                             f"charge) = ({b}, {n}, >= {width}), got {t.shape}")
        t = t[:, :, :width]
        if not np.isfinite(t[owned]).all():
            raise ValueError("ionisation_times_au must be finite for every unit of charge")
    t = np.where(owned, t, np.inf).reshape(b, -1)
    atom = np.broadcast_to(np.arange(n)[:, None], (n, width)).reshape(-1)
    order = np.argsort(t, axis=1, kind="stable")
    return (np.take_along_axis(t, order, axis=1), np.ascontiguousarray(atom[order]),
            q.sum(axis=1))


def integrate(positions_bohr, charges, masses_u, ionisation_times_au=None, mask=None,
              t_final_au: float = T_FINAL_AU, dt0_au: float = DT0_AU, growth: float = GROWTH,
              dt_charging_au: float = DT_CHARGING_AU, order: int = 4) -> Explosion:
    """Explode a padded batch: positions (B, N, 3) bohr, final charges (B, N), masses (B, N)
    in u, optional ionisation times (B, N, >= max charge) in a.u. (None: all at t = 0, the
    cheap mode) and a mask (B, N) of real atoms; ``order`` 2 (velocity Verlet) or 4
    (Yoshida). Padded atoms get zero momentum."""
    r = np.array(positions_bohr, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    m_u = np.asarray(masses_u, dtype=np.float64)
    if r.ndim != 3 or r.shape[2] != 3 or q.shape != r.shape[:2] or m_u.shape != r.shape[:2]:
        raise ValueError(f"positions must be (B, N, 3) with charges and masses (B, N); got "
                         f"{r.shape}, {q.shape}, {m_u.shape}")
    if order not in SUBSTEPS:
        raise ValueError(f"order must be one of {sorted(SUBSTEPS)}, got {order}")
    if not (t_final_au > 0 and dt0_au > 0 and growth >= 1 and dt_charging_au > 0):
        raise ValueError("need t_final_au, dt0_au, dt_charging_au > 0 and growth >= 1")
    mask = np.ones(r.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if not np.isfinite(r[mask]).all():
        raise ValueError("positions must be finite")
    if (q[mask] < 0).any() or (q != np.round(q)).any():
        raise ValueError("charges must be non-negative integers")
    if (m_u[mask] <= 0).any():
        raise ValueError("masses must be positive")
    q = np.where(mask, q, 0.0)
    m = np.where(mask, m_u, 1.0) * ELECTRON_MASSES_PER_U
    t_ev, atom_ev, n_ev = _events(q, ionisation_times_au)
    p = np.zeros_like(r)
    deposited = np.zeros(len(r))
    steps = _explode_all(r, m, t_ev, atom_ev, n_ev, float(t_final_au), float(dt0_au),
                         float(growth), float(dt_charging_au), SUBSTEPS[order], p, deposited)
    return Explosion(np.where(mask[..., None], p, 0.0), deposited, int(steps))


def explode_batch(positions_bohr, charges, masses_u, ionisation_times_au=None, mask=None,
                  **integrator) -> np.ndarray:
    """Asymptotic momenta (B, N, 3) in a.u. of a padded batch (see :func:`integrate`)."""
    return integrate(positions_bohr, charges, masses_u, ionisation_times_au, mask,
                     **integrator).momenta_au


def explode(positions_bohr, charges, masses_u, ionisation_times_au=None) -> np.ndarray:
    """Asymptotic momenta (N, 3) in a.u. of one event: positions (N, 3) in bohr, final
    charges (N,), masses (N,) in u, optional ionisation times (N, >= max charge) in a.u."""
    times = None if ionisation_times_au is None else np.asarray(ionisation_times_au)[None]
    return explode_batch(np.asarray(positions_bohr)[None], np.asarray(charges)[None],
                         np.asarray(masses_u)[None], times)[0]


def explode_reference(positions_bohr, charges, masses_u, ionisation_times_au=None,
                      t_final_au: float = T_FINAL_AU, rtol: float = 1e-11) -> np.ndarray:
    """The same event integrated by scipy's DOP853 (tight tolerances), piecewise between
    ionisation times, with the same tail correction: the independent check of
    :func:`explode`."""
    from scipy.integrate import solve_ivp

    r0 = np.asarray(positions_bohr, float)
    n = len(r0)
    m = np.asarray(masses_u, float)[:, None] * ELECTRON_MASSES_PER_U
    t_ev, atom_ev, n_ev = _events(np.asarray(charges, float)[None], None
                                  if ionisation_times_au is None
                                  else np.asarray(ionisation_times_au, float)[None])
    t_ev, atom_ev = t_ev[0, :n_ev[0]], atom_ev[0, :n_ev[0]]
    t0 = t_ev[0] if len(t_ev) else 0.0
    q = np.zeros(n)
    f = np.zeros((n, 3))

    def rhs(_t, y):
        _forces(y[:3 * n].reshape(n, 3), q, f)
        return np.concatenate([(y[3 * n:].reshape(n, 3) / m).ravel(), f.ravel()])

    y = np.concatenate([r0.ravel(), np.zeros(3 * n)])
    t = t0
    for stop in [*np.unique(t_ev), t0 + t_final_au]:
        if stop > t:
            sol = solve_ivp(rhs, (t, stop), y, method="DOP853", rtol=rtol,
                            atol=1e-12 * max(1.0, np.abs(y).max()))
            y, t = sol.y[:, -1], stop
        for k in np.flatnonzero(t_ev == stop):
            q[atom_ev[k]] += 1.0
    _forces(y[:3 * n].reshape(n, 3).copy(), q, f)
    return y[3 * n:].reshape(n, 3) + f * t_final_au
