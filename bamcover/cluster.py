"""Coverage as tasks under its former name (see :mod:`bamcover.coverage_tasks`).

Manifests of tasks made before the move name ``bamcover.cluster:window_job`` and
``bamcover.cluster:density_job`` as their function: they resolve here.
"""

# re-export; removed when callers move
from .coverage_tasks import (
    REGIONS_FILE,
    collect,
    density_job,
    split_rows,
    submit_density,
    submit_profile,
    submitted_inputs,
    task_bams,
    window_job,
)

__all__ = ["REGIONS_FILE", "collect", "density_job", "split_rows", "submit_density",
           "submit_profile", "submitted_inputs", "task_bams", "window_job"]
