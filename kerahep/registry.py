"""The task registry: tasks register by name; ``get_task`` finds them.

Example::

    from kerahep.registry import register_task
    from kerahep.tasks.base import Task

    @register_task
    class MyTask(Task):
        name = "my_task"
        ...
"""

from __future__ import annotations

import difflib
import importlib

from .errors import KerahepError

_TASKS: dict = {}
_BUILTIN = ("dy_electron", "electron_photon", "higgs_mae", "jet_ssl", "hcal_dqm")
_loaded = False


class UnknownTaskError(KerahepError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return self.args[0]


def register_task(cls):
    """Class decorator: register a :class:`~kerahep.tasks.base.Task` subclass under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a string attribute 'name' to be registered")
    from .artifacts import check_name

    check_name(name, "task name")
    if name in _TASKS and type(_TASKS[name]) is not cls:
        raise KeyError(f"a task named {name!r} is already registered ({type(_TASKS[name]).__name__})")
    _TASKS[name] = cls()
    return cls


def _load_builtin():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN:
        try:
            importlib.import_module(f"kerahep.tasks.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kerahep.tasks.{mod}":
                raise


def list_tasks() -> list[str]:
    """Names of all registered tasks, sorted."""
    _load_builtin()
    return sorted(_TASKS)


def get_task(name: str):
    """Return the registered task called ``name``.

    Raises:
        UnknownTaskError: naming the known tasks and the closest match.
    """
    _load_builtin()
    if name in _TASKS:
        return _TASKS[name]
    known = sorted(_TASKS)
    hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    msg = f"unknown task {name!r}; known tasks: {', '.join(known) or '(none)'}"
    if hint:
        msg += f". Did you mean {hint[0]!r}?"
    raise UnknownTaskError(msg)
