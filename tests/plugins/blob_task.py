"""A toy task that lives outside retroscope, as a lab's own task would: a Gaussian spot whose
position and width the network infers. It reaches retroscope only through the entry-point
group ``retroscope.tasks`` (see ``tests/conftest.py``), so a test with it shows that no shared
module has to know a task."""

from __future__ import annotations

import numpy as np

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.targets import Targets
from retroscope.core.task import DemoSettings, ModelSpec, Task


class LinearTargets(Targets):
    """Each scalar parameter scaled to [0, 1] by its bounds."""

    def __init__(self, space: ParameterSpace) -> None:
        self.space = space
        self.columns = tuple(space.names)
        self.units = tuple(p.unit for p in space.parameters)

    def scale(self):
        return np.array([p.span for p in self.space.parameters])

    def offset(self):
        return np.array([p.low for p in self.space.parameters])

    def encode(self, record):
        cols = np.stack([np.asarray(record[n], float) for n in self.columns], 1)
        return (cols - self.offset()) / self.scale()

    def decode(self, y):
        phys = np.asarray(y) * self.scale() + self.offset()
        return {n: phys[:, j] for j, n in enumerate(self.columns)}


class BlobTask(Task):
    """A Gaussian spot of width sigma_px at x0_px on a 17x13 image (odd sizes catch bugs)."""

    name = "blob-test"
    title = "Gaussian blob (test fixture)"
    paper = "-"
    infers = "spot position and width"
    space = ParameterSpace((Scalar("x0_px", "px", 3.0, 13.0, step=5.0),
                            Scalar("sigma_px", "px", 1.0, 3.0, step=1.0)))
    model = ModelSpec("resnet18", {"base_width": 8, "stem": "small"})

    def __init__(self) -> None:
        self.targets = LinearTargets(self.space)

    def simulate(self, params, rng):
        y, x = np.mgrid[0:13, 0:17]
        x0 = params["x0_px"][:, None, None]
        s = params["sigma_px"][:, None, None]
        image = np.exp(-((x - x0) ** 2 + (y - 6) ** 2) / (2 * s**2))
        image = image + 0.01 * rng.standard_normal(image.shape)
        return {"image": image.astype(np.float32)}

    def metrics(self, true, pred):
        return {"abs_error_x0_px": np.abs(true["x0_px"] - pred["x0_px"])}

    def demo_settings(self) -> DemoSettings:
        return DemoSettings(n=120, workers=1, shard_size=60, epochs=2, train_minutes=1.0,
                            train={"batch_size": 32, "lr": 3e-3}, n_files=2)


class BlobMeanTask(BlobTask):
    """The same spot, read by the toy learner of ``mean_learner.py`` (a plugin as well)."""

    name = "blob-mean-test"
    learner = "mean-test"
