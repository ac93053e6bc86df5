"""The forward-fit baseline recovers a geometry from its own (cheap-mode) momenta."""

import numpy as np
import pytest

from retroscope.tasks.explosion import explode, molecule
from retroscope.tasks.explosion.baseline import ForwardFit
from retroscope.tasks.explosion.frame import aligned_rmsd
from retroscope.tasks.explosion.molecules import atomic_numbers, masses_u


@pytest.mark.parametrize("name, charges", [("H2O", [2, 1, 1]), ("SiH4", [4, 1, 1, 1, 1])])
def test_forward_fit_recovers_a_displaced_geometry(name, charges):
    """SiH4 is the hard case: its equilibrium explosion leaves Si at rest, so the start's
    momentum frame is undefined unless the fit breaks the symmetry."""
    symbols, reference = molecule(name)
    rng = np.random.default_rng(3)
    truth = reference + rng.normal(scale=0.15, size=reference.shape)   # a conformer, bohr
    truth -= truth.mean(axis=0)
    q = np.array(charges, float)
    momenta = explode(truth, q, masses_u(symbols))
    tokens = np.column_stack([atomic_numbers(symbols), q, momenta])
    result = ForwardFit(starts=2).fit(symbols, tokens, reference)
    assert np.isfinite(result["positions"]).all()
    # the bond-length scale is 2-3 bohr; a wrong start or frame leaves errors of ~1 bohr
    assert aligned_rmsd(result["positions"], truth) < 0.05
    assert result["simulator_calls"] > 0
