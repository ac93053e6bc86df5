"""Secular molecular dynamics of an ion crystal, compiled with numba.

Dimensionless units of :class:`retroscope.tasks.crystal.trap.Units`: every ion i has radial and
axial spring constants (kr_i, kz_i), charge c_i and mass m_i; the energy is

    E = sum_i [kr_i (x_i^2 + y_i^2) + kz_i z_i^2] / 2 + sum_{i<j} c_i c_j / |r_i - r_j|.

* :func:`fire_minimise` finds a local minimum of E (FIRE, Bitzek et al., PRL 97, 170201 (2006)).
* :func:`langevin_sample` runs the secular motion at temperature T with the BAOAB splitting
  (Leimkuhler & Matthews 2013): the laser-cooling friction and the stochastic heating balance
  at T (fluctuation-dissipation); dark ions, cooled only sympathetically, get a weaker friction.
* :func:`rf_verlet` integrates the full time-dependent RF force with velocity Verlet (the CCMD
  scheme) for validation of the pseudopotential.

The O(N^2) Coulomb loop is the cost; for batches of crystals on a GPU see :mod:`.torch_md`.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, fastmath=False)
def coulomb_trap_forces(pos, kr, kz, charge, out):
    """Forces of the harmonic pseudopotential plus all-pairs Coulomb; returns the energy."""
    n = pos.shape[0]
    energy = 0.0
    for i in range(n):
        x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
        out[i, 0] = -kr[i] * x
        out[i, 1] = -kr[i] * y
        out[i, 2] = -kz[i] * z
        energy += 0.5 * (kr[i] * (x * x + y * y) + kz[i] * z * z)
    for i in range(n):
        xi, yi, zi, ci = pos[i, 0], pos[i, 1], pos[i, 2], charge[i]
        fx = 0.0
        fy = 0.0
        fz = 0.0
        for j in range(i + 1, n):
            dx = xi - pos[j, 0]
            dy = yi - pos[j, 1]
            dz = zi - pos[j, 2]
            r2 = dx * dx + dy * dy + dz * dz
            inv_r = 1.0 / math.sqrt(r2)
            cc = ci * charge[j]
            energy += cc * inv_r
            s = cc * inv_r * inv_r * inv_r
            fx += s * dx
            fy += s * dy
            fz += s * dz
            out[j, 0] -= s * dx
            out[j, 1] -= s * dy
            out[j, 2] -= s * dz
        out[i, 0] += fx
        out[i, 1] += fy
        out[i, 2] += fz
    return energy


@numba.njit(cache=True)
def _fire(pos, kr, kz, charge, mass, ftol, max_steps, dt0, dt_max):
    n = pos.shape[0]
    f = np.empty_like(pos)
    v = np.zeros_like(pos)
    coulomb_trap_forces(pos, kr, kz, charge, f)
    dt = dt0
    alpha = 0.1
    n_pos = 0
    fmax = 0.0
    for step in range(max_steps):
        fmax = 0.0
        for i in range(n):
            f2 = f[i, 0] ** 2 + f[i, 1] ** 2 + f[i, 2] ** 2
            if f2 > fmax:
                fmax = f2
        fmax = math.sqrt(fmax)
        if fmax < ftol:
            return step, fmax
        p = 0.0
        vn = 0.0
        fn = 0.0
        for i in range(n):
            for k in range(3):
                p += f[i, k] * v[i, k]
                vn += v[i, k] * v[i, k]
                fn += f[i, k] * f[i, k]
        vn = math.sqrt(vn)
        fn = math.sqrt(fn)
        if p > 0.0:
            for i in range(n):
                for k in range(3):
                    v[i, k] = (1.0 - alpha) * v[i, k] + alpha * vn * f[i, k] / fn
            n_pos += 1
            if n_pos > 5:
                dt = min(dt * 1.1, dt_max)
                alpha *= 0.99
        else:
            n_pos = 0
            dt *= 0.5
            alpha = 0.1
            for i in range(n):
                for k in range(3):
                    pos[i, k] -= 0.5 * dt * v[i, k]
                    v[i, k] = 0.0
        # semi-implicit Euler step (the MD integrator of the original FIRE paper)
        for i in range(n):
            for k in range(3):
                v[i, k] += dt * f[i, k] / mass[i]
                pos[i, k] += dt * v[i, k]
        coulomb_trap_forces(pos, kr, kz, charge, f)
    return max_steps, fmax


def fire_minimise(pos: np.ndarray, kr: np.ndarray, kz: np.ndarray, charge: np.ndarray,
                  ftol: float = 1e-4, max_steps: int = 20000, dt0: float = 0.02,
                  dt_max: float = 0.2) -> tuple[np.ndarray, int, float]:
    """Relax ``pos`` (N, 3) to a local energy minimum; returns (positions, steps, max |F|).

    ``ftol`` is the largest allowed residual force in units of k_z l0 (the Coulomb force
    between two ions one l0 apart is 1). Unit masses: only the minimum matters here.
    """
    pos = np.ascontiguousarray(pos, dtype=np.float64).copy()
    steps, fmax = _fire(pos, _f64(kr), _f64(kz), _f64(charge), np.ones(len(pos)), float(ftol),
                        int(max_steps), float(dt0), float(dt_max))
    return pos, int(steps), float(fmax)


@numba.njit(cache=True)
def _baoab(pos, vel, kr, kz, charge, mass, friction, temperature, dt, n_steps, every, noise,
           out):
    n = pos.shape[0]
    f = np.empty_like(pos)
    coulomb_trap_forces(pos, kr, kz, charge, f)
    c1 = np.exp(-friction * dt)
    c2 = np.sqrt(1.0 - c1 * c1)
    k = 0
    for step in range(n_steps):
        for i in range(n):
            s = c2[i] * math.sqrt(temperature / mass[i])
            for d in range(3):
                vel[i, d] += 0.5 * dt * f[i, d] / mass[i]
                pos[i, d] += 0.5 * dt * vel[i, d]
                vel[i, d] = c1[i] * vel[i, d] + s * noise[step, i, d]
                pos[i, d] += 0.5 * dt * vel[i, d]
        coulomb_trap_forces(pos, kr, kz, charge, f)
        for i in range(n):
            for d in range(3):
                vel[i, d] += 0.5 * dt * f[i, d] / mass[i]
        if every > 0 and (step + 1) % every == 0 and k < out.shape[0]:
            out[k] = pos
            k += 1
    return k


def langevin_sample(pos: np.ndarray, kr: np.ndarray, kz: np.ndarray, charge: np.ndarray,
                    mass: np.ndarray, friction: np.ndarray, temperature: float, dt: float,
                    n_equilibrate: int, n_samples: int, every: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Thermalise at ``temperature`` (k_B T in k_z l0^2) and record ``n_samples`` snapshots.

    Returns (snapshots (n_samples, N, 3), final velocities). Velocities start Maxwellian.
    ``friction`` is per ion, in units of omega_z; the random kicks come from ``rng``.
    """
    pos = np.ascontiguousarray(pos, dtype=np.float64).copy()
    mass = _f64(mass)
    vel = rng.standard_normal(pos.shape) * np.sqrt(temperature / mass)[:, None]
    args = (_f64(kr), _f64(kz), _f64(charge), mass, _f64(friction), float(temperature),
            float(dt))
    if n_equilibrate:
        noise = rng.standard_normal((n_equilibrate, len(pos), 3))
        _baoab(pos, vel, *args, n_equilibrate, 0, noise, np.empty((0, len(pos), 3)))
    out = np.empty((n_samples, len(pos), 3))
    noise = rng.standard_normal((n_samples * every, len(pos), 3))
    _baoab(pos, vel, *args, n_samples * every, every, noise, out)
    return out, vel


@numba.njit(cache=True)
def _rf_forces(pos, t, rf_x, dc_r, kz, charge, omega, f):
    coulomb_trap_forces(pos, np.zeros_like(kz), np.zeros_like(kz), charge, f)
    c = math.cos(omega * t)
    for i in range(pos.shape[0]):
        f[i, 0] += (-rf_x[i] * c + dc_r[i]) * pos[i, 0]
        f[i, 1] += (rf_x[i] * c + dc_r[i]) * pos[i, 1]
        f[i, 2] += -kz[i] * pos[i, 2]


@numba.njit(cache=True)
def _rf_verlet(pos, vel, rf_x, dc_r, kz, charge, mass, omega, dt, n_steps, every, out):
    f = np.empty_like(pos)
    t = 0.0
    _rf_forces(pos, t, rf_x, dc_r, kz, charge, omega, f)
    k = 0
    for step in range(n_steps):
        for i in range(pos.shape[0]):
            for d in range(3):
                vel[i, d] += 0.5 * dt * f[i, d] / mass[i]
                pos[i, d] += dt * vel[i, d]
        t += dt
        _rf_forces(pos, t, rf_x, dc_r, kz, charge, omega, f)
        for i in range(pos.shape[0]):
            for d in range(3):
                vel[i, d] += 0.5 * dt * f[i, d] / mass[i]
        if (step + 1) % every == 0 and k < out.shape[0]:
            out[k] = pos
            k += 1
    return k


def rf_verlet(pos: np.ndarray, vel: np.ndarray, rf_x: np.ndarray, dc_r: np.ndarray,
              kz: np.ndarray, charge: np.ndarray, mass: np.ndarray, omega_rf: float,
              dt: float, n_steps: int, every: int = 1) -> np.ndarray:
    """Full time-dependent RF dynamics (no pseudopotential), velocity Verlet as in CCMD.

    Radial force on ion i: F_x = (-rf_x_i cos(Omega t) + dc_r_i) x, F_y = (rf_x_i cos(Omega t)
    + dc_r_i) y, with rf_x = Q V / r0^2 and dc_r = kappa Q U / z0^2 in units of the reference
    k_z; axial -kz z. Returns positions every ``every`` steps, shape (n_steps // every, N, 3).
    """
    pos = np.ascontiguousarray(pos, dtype=np.float64).copy()
    vel = np.ascontiguousarray(vel, dtype=np.float64).copy()
    out = np.empty((n_steps // every, len(pos), 3))
    _rf_verlet(pos, vel, _f64(rf_x), _f64(dc_r), _f64(kz), _f64(charge), _f64(mass),
               float(omega_rf), float(dt), int(n_steps), int(every), out)
    return out


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)
