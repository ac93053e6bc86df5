"""Ultracold atom clouds: raw camera frames, optical depth, fringe removal, labels, Gaussian
moments and fits, and the ``clouds`` detection task (Hofer et al. 2021)."""

from retroscope.tasks.clouds.task import CloudsTask

TASK = CloudsTask()

__all__ = ["TASK", "CloudsTask"]
