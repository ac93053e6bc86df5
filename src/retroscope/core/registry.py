"""Registries of tasks and learners, filled from entry points.

retroscope's own tasks and learners are found exactly as a lab's are: through the entry-point
groups ``retroscope.tasks`` and ``retroscope.learners`` of installed distributions. A lab adds
a task from a package of its own::

    [project.entry-points."retroscope.tasks"]
    mytask = "mylab.mytask:TASK"        # a Task object, or a Task class (instantiated)

No shared module imports a task or a learner by name. An entry point that fails to load is
reported as a warning and skipped, so a broken plugin does not break the others. A name that
is not registered makes the registry read the entry points once more (a plugin installed while
a notebook runs is found without a restart).
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

from retroscope.core.learner import Learner
from retroscope.core.task import Task

TASK_GROUP = "retroscope.tasks"
LEARNER_GROUP = "retroscope.learners"


class UnknownNameError(KeyError):
    """A task or learner name that no entry point provides."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Objects of one kind by name: registered by hand or loaded from an entry-point group.

    ``kind`` names them in messages; ``check(obj)`` returns the object to register (a class is
    instantiated) or raises ``TypeError``.
    """

    def __init__(self, group: str, kind: str, base: type) -> None:
        self.group = group
        self.kind = kind
        self.base = base
        self._items: dict[str, Any] = {}
        self._scanned = False

    def register(self, obj: Any) -> Any:
        """Add ``obj`` under ``obj.name``; a different object under a taken name is an error."""
        if not isinstance(obj, self.base):
            raise TypeError(f"a {self.kind} must be a {self.base.__name__}, got {obj!r}")
        known = self._items.get(obj.name)
        if known is not None and known is not obj:
            raise ValueError(f"a different {self.kind} is already registered as {obj.name!r}")
        self._items[obj.name] = obj
        return obj

    def scan(self) -> None:
        """Load every entry point of the group whose name is not registered yet."""
        self._scanned = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                obj = ep.load()
                self.register(obj() if isinstance(obj, type) else obj)
            except Exception as exc:  # a broken plugin must not break the others
                warnings.warn(f"{self.kind} entry point {ep.name!r} ({ep.value}) failed to "
                              f"load: {exc}", stacklevel=3)

    def get(self, name: str) -> Any:
        if name not in self._items:
            self.scan()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered {self.kind}s: "
                                   f"{known}") from None

    def all(self) -> list:
        if not self._scanned:
            self.scan()
        return [self._items[k] for k in sorted(self._items)]


_TASKS = Registry(TASK_GROUP, "task", Task)
_LEARNERS = Registry(LEARNER_GROUP, "learner", Learner)


def register_task(task):
    """Add a task to the registry by hand (plugins normally come through entry points)."""
    return _TASKS.register(task)


def get_task(name: str):
    """The registered task ``name``."""
    return _TASKS.get(name)


def list_tasks() -> list:
    """Every registered task, by name."""
    return _TASKS.all()


def register_learner(learner):
    """Add a learner to the registry by hand (plugins normally come through entry points)."""
    return _LEARNERS.register(learner)


def get_learner(name: str):
    """The registered learner ``name``."""
    return _LEARNERS.get(name)


def list_learners() -> list:
    """Every registered learner, by name."""
    return _LEARNERS.all()


def learner_of(task):
    """The Learner object of a task: its ``learner`` attribute, a Learner or a registered
    name."""
    learner = task.learner
    return learner if isinstance(learner, Learner) else get_learner(learner)
