"""PruneFuse: efficient data selection via weight pruning and network fusion.

The method, one module per step, at the top of the package (docs/method.md): ``models``
(architectures, a registry), ``prune`` (step 1: prune at initialization), ``select`` (step 2:
selection scores, a registry; ``kcenter``, ``picks``), ``fuse`` (step 3), ``distill`` (step 4:
the KD loss), ``train`` (the one trainer; ``augment``, ``infer``), ``flops`` (cost accounting
in MACs), ``device`` and ``errors``.

Above it, one layer per subpackage, each importing only the method and the layers before it:
``data`` (in-memory datasets, a registry; ``data.imagefolder``: your own images), ``run`` (one
run: ``config``, its parameters and profiles; ``experiment``, the run loop; ``charges``, the
one charging rule; ``records``, the run record), ``analysis`` (from records only: the declared
``comparisons``, ``artefacts``, ``claims``, ``plots``, ``report``, ``explore``) and ``batch``
(the batch that regenerates them: ``grid``, which runs; ``execute``, papermill; ``executors``,
local or Ray; ``reproduce``, the driver). ``plugins`` loads your own datasets and models;
``cli`` is the ``prunefuse`` command. The flat names of an earlier layout (``prunefuse.config``,
``prunefuse.runs``, ...) still import, as the same modules: :data:`MOVED`.
"""

__version__ = "0.1.0"

import importlib
import importlib.abc
import importlib.util
import sys

# Where each module of the earlier flat layout lives now (prunefuse.<old> -> prunefuse.<new>).
# The old names still import, as the very module of the new home (one object in sys.modules,
# so patching either name patches both): notebooks, docs and users' copies name them.
MOVED: dict[str, str] = {
    "imagefolder": "data.imagefolder",
    "fingerprint": "data.fingerprint",
    "config": "run.config",
    "experiment": "run.experiment",
    "steps": "run.steps",
    "charges": "run.charges",
    "runs": "run.records",
    "stats": "run.stats",
    "blocks": "run.blocks",
    "estimate": "run.estimate",
    "label": "run.label",
    "grid": "batch.grid",
    "execute": "batch.execute",
    "executors": "batch.executors",
    "reproduce": "batch.reproduce",
    "demo": "batch.demo",
    "registry": "analysis.registry",
    "comparisons": "analysis.comparisons",
    "judge": "analysis.judge",
    "artefacts": "analysis.artefacts",
    "evidence": "analysis.evidence",
    "claims": "analysis.claims",
    "study": "analysis.study",
    "plots": "analysis.plots",
    "report": "analysis.report",
    "explore": "analysis.explore",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``prunefuse.<old>`` of :data:`MOVED` as ``prunefuse.<new>``."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package == __name__ and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a placeholder, replaced in sys.modules by exec_module

    def exec_module(self, module):
        old = module.__name__.rpartition(".")[2]
        sys.modules[module.__name__] = importlib.import_module(f"{__name__}.{MOVED[old]}")


# First, so that a stale copy of an old module (an earlier install's file) never shadows the move.
if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())


def __getattr__(name: str):
    """``prunefuse.<old>`` as an attribute, as it was once any module had imported it."""
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from .data import imagefolder  # noqa: E402,F401 (registers dataset "imagefolder")

# A batch's kernels load the plugins the `prunefuse` command was given (prunefuse.plugins).
from .plugins import load_from_env as _load_plugins  # noqa: E402

_load_plugins()
