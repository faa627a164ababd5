"""What the records show, read from records only (nothing here trains): the comparisons,
declared once (``comparisons``), how a claim is judged (``judge``), the artefact registry
(``registry``) and its builders (``artefacts``: the paper's tables and figures; ``evidence``;
``claims``; ``study``: the declared study's artefacts), ``plots``, the page per batch
(``report``) and a look inside one run or two (``explore``)."""
