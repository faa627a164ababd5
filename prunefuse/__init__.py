"""PruneFuse: efficient data selection via weight pruning and network fusion.

The method, one module per step (docs/method.md): ``models`` (architectures, a registry),
``data`` (in-memory datasets, a registry; ``imagefolder``: your own images), ``prune``
(step 1: prune at initialization), ``select`` (step 2: selection scores, a registry), ``fuse``
(step 3), ``distill`` (step 4: the KD loss), ``train`` (the one trainer) and ``flops`` (cost
accounting in MACs).

Experiments on top of it: ``config`` (every run parameter and the profiles), ``charges``
(the one charging rule), ``experiment`` (one run, resumable), ``runs`` (the run record, the
batch layout and the results table), ``plugins`` (your own datasets and models), ``stats``
(statistics over seeds), ``artefacts`` and ``plots`` (the paper's tables and figures, from
records only), and the batch that regenerates them: ``grid`` (which runs), ``execute``
(papermill), ``executors`` (local or Ray), ``reproduce`` (the driver). ``cli`` is the
``prunefuse`` command.
"""

__version__ = "0.1.0"

from . import imagefolder  # noqa: E402,F401 (registers dataset "imagefolder")

# A batch's kernels load the plugins the `prunefuse` command was given (prunefuse.plugins).
from .plugins import load_from_env as _load_plugins  # noqa: E402

_load_plugins()
