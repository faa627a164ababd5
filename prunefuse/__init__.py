"""PruneFuse: efficient data selection via weight pruning and network fusion.

The package follows the method's steps, one module each: ``models`` (architectures),
``data`` (in-memory datasets), ``prune`` (step 1, prune at initialization), ``select``
(step 2, selection scores), ``fuse`` (step 3), ``distill`` (step 4, KD loss), ``train``
(the trainer), ``flops`` (cost accounting), ``runs`` (experiment records) and ``plots``.
"""

__version__ = "0.1.0"
