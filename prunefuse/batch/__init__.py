"""A batch of runs: which runs (``grid``, planned from the declared comparisons and artefacts),
notebook execution (``execute``, papermill), where they run (``executors``, local or Ray), the
driver that runs them and rebuilds the artefacts (``reproduce``) and the three-run ``demo``."""
