"""The classical method: a forward fit of the positions to the measured momenta.

For one event, find positions r minimising sum_i |p_i(r) - p_i,measured|^2 over the detected
ions, with the cheap simulator (:func:`.dynamics.integrate`: every charge at t = 0, atoms at
rest) in the loop, by a trust-region least-squares solver (scipy ``least_squares``, numerical
Jacobian). The starts: the molecule's equilibrium geometry turned so that its own explosion's
momentum frame matches the measured one, and that start with random displacements (a
multi-start, the best fit kept). On events made with charge-up (precise mode) the fit
inherits the instant-charging bias: the charges were not there at once, the ions flew apart
more softly, and an instantly charged molecule that reproduces the momenta is larger.
"""

from __future__ import annotations

import time

import numpy as np

from retroscope.tasks.explosion.dynamics import integrate
from retroscope.tasks.explosion.frame import canonical_rotation
from retroscope.tasks.explosion.molecules import BOHR_PER_ANGSTROM, masses_u


class ForwardFit:
    """``fit(symbols, tokens, start_bohr)`` -> positions (lab frame, bohr) and what it cost."""

    def __init__(self, starts: int = 3, displacement_angstrom: float = 0.2, seed: int = 0,
                 max_nfev: int = 60) -> None:
        self.starts = starts
        self.displacement = displacement_angstrom * BOHR_PER_ANGSTROM
        self.seed = seed
        self.max_nfev = max_nfev

    def fit(self, symbols, tokens: np.ndarray, reference_bohr: np.ndarray,
            missed_charges: np.ndarray | None = None) -> dict:
        """Fit one event: ``tokens`` (k, 5) of its k atoms (undetected ones with q = 0; their
        charge is unknown: ``missed_charges`` (k,) guesses it, else 1), ``reference_bohr``
        (k, 3) the equilibrium geometry in any orientation. Returns positions (k, 3), the
        cost, simulator calls and seconds."""
        from scipy.optimize import least_squares

        t0 = time.perf_counter()
        tokens = np.asarray(tokens, float)
        k = len(tokens)
        detected = tokens[:, 1] > 0
        guess = 1.0 if missed_charges is None else np.asarray(missed_charges, float)
        q = np.where(detected, tokens[:, 1], guess)
        m = masses_u(symbols)
        p_meas = tokens[detected, 2:5]
        scale = np.abs(p_meas).max()
        calls = 0

        def momenta(x: np.ndarray) -> np.ndarray:
            nonlocal calls
            pos = x.reshape(-1, k, 3)
            calls += len(pos)
            return integrate(pos, np.broadcast_to(q, pos.shape[:2]),
                             np.broadcast_to(m, pos.shape[:2]), order=2).momenta_au

        def residual(x: np.ndarray) -> np.ndarray:
            return ((momenta(x)[0, detected] - p_meas) / scale).ravel()

        start = self._aligned_start(reference_bohr, momenta, tokens, detected)
        rng = np.random.default_rng(self.seed)
        best = None
        for s in range(self.starts):
            x0 = start + (rng.normal(scale=self.displacement, size=start.shape) if s else 0.0)
            sol = least_squares(residual, x0.ravel(), method="trf", x_scale=1.0,
                                max_nfev=self.max_nfev * (3 * k + 1))
            if best is None or sol.cost < best.cost:
                best = sol
        pos = best.x.reshape(k, 3)
        return {"positions": pos - pos.mean(axis=0), "cost": float(best.cost),
                "simulator_calls": calls, "seconds": time.perf_counter() - t0}

    @staticmethod
    def _aligned_start(reference, momenta, tokens, detected) -> np.ndarray:
        """The reference geometry turned so that its explosion's momentum frame (from the
        same detected ions) is the measured one."""
        ref = np.asarray(reference, float) - np.mean(reference, axis=0)
        # a symmetric reference (SiH4, CCl4: the central atom's momentum is zero) has no
        # momentum frame; the frame of a copy jittered by 0.05 bohr is as good a start
        probe = ref + np.random.default_rng(0).normal(scale=0.05, size=ref.shape)
        p_ref = momenta(probe[None].ravel())[0]
        rot_ref = canonical_rotation(p_ref, tokens[:, 0], tokens[:, 1], detected)
        rot_meas = canonical_rotation(tokens[:, 2:5], tokens[:, 0], tokens[:, 1], detected)
        return ref @ rot_ref.T @ rot_meas


class ForwardFitBaseline:
    """``evaluate --baseline N``: the forward fit on the first N test events against the
    network on the same events (per-coordinate MAE in the momentum frame, seconds and
    simulator calls per event)."""

    method = "forward fit (cheap simulator, least squares, multi-start)"

    def __init__(self, task, **kwargs) -> None:
        self.task = task
        self.fit = ForwardFit(**kwargs)

    def compare(self, tokens, params, true_lab, network_frame, rotation, progress=False) -> dict:
        from retroscope.tasks.explosion.molecules import molecule

        errors_fit, errors_net, seconds, calls = [], [], [], []
        for i in range(len(tokens)):
            real = tokens[i, :, 0] > 0
            k = int(real.sum())
            name = self.task.settings.molecules[int(params["molecule"][i])]
            symbols, reference = molecule(name)
            result = self.fit.fit(symbols, tokens[i, :k], reference)
            fitted = result["positions"] @ rotation[i].T
            truth = true_lab[i, :k] @ rotation[i].T
            errors_fit.append(np.abs(fitted - truth).mean())
            errors_net.append(np.abs(network_frame[i, :k] - truth).mean())
            seconds.append(result["seconds"])
            calls.append(result["simulator_calls"])
        return {"method": self.method, "n_events": len(tokens),
                "baseline_coordinate_mae": float(np.mean(errors_fit)),
                "baseline_coordinate_mae_median": float(np.median(errors_fit)),
                "network_coordinate_mae": float(np.mean(errors_net)),
                "baseline_s_per_event": float(np.median(seconds)),
                "baseline_simulator_calls_per_event": float(np.median(calls))}
