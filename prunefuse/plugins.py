"""Plugins: modules of the researcher's own that register datasets, architectures or scores
(README, "Your data, your model").

``--plugin MODULE`` loads one in the ``prunefuse`` process; :func:`export` then names every
loaded plugin's file in ``$PRUNEFUSE_PLUGINS``, and ``import prunefuse`` in a child process
(the notebook kernels of ``reproduce``, a run's kernel) loads them again from there, so a
batch on a plugin's dataset and model runs in every kernel it starts.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

ENV = "PRUNEFUSE_PLUGINS"
_LOADED: dict[str, ModuleType] = {}  # resolved file -> module, each loaded once


class PluginError(ImportError):
    """A plugin that cannot be found: one line naming it."""


def load(name: str) -> ModuleType:
    """Import a plugin once: a module name, looked up from the working directory first, or
    the path of a ``.py`` file. A file already loaded (under either spelling) is not run again.

    Raises:
        PluginError: no such file, or no module of that name.
    """
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise PluginError(f"--plugin {name}: no such file")
        if str(path) in _LOADED:
            return _LOADED[str(path)]
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        _LOADED[str(path)] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the console script, unlike python -m, omits it
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name.split(".")[0] and err.name != name:
            raise  # the plugin itself imports something missing: its own traceback
        raise PluginError(f"--plugin {name}: no module of that name in the working directory "
                          "or on the Python path; give a module name or a .py file") from None
    if getattr(module, "__file__", None):
        _LOADED.setdefault(str(Path(module.__file__).resolve()), module)
    return module


def export() -> None:
    """Name every loaded plugin's file in ``$PRUNEFUSE_PLUGINS``, for child processes."""
    paths = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    paths += [p for p in _LOADED if p not in paths]
    if paths:
        os.environ[ENV] = os.pathsep.join(paths)


def load_from_env() -> None:
    """Load the plugins ``$PRUNEFUSE_PLUGINS`` names (``import prunefuse`` does this)."""
    for path in os.environ.get(ENV, "").split(os.pathsep):
        if path and not Path(path).is_file():
            warnings.warn(f"${ENV}: {path} is gone; not loaded", stacklevel=2)
        elif path:
            load(path)
