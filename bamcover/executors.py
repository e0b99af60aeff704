"""The local process pool under its former name (see :mod:`bamcover.pool`)."""

# re-export; removed when callers move
from .pool import (
    WorkerDied,
    fold_local,
    map_local,
    pid_alive,
    progress_bar,
    starmap_local,
    worker_index,
    workers_for,
)

__all__ = ["WorkerDied", "fold_local", "map_local", "pid_alive", "progress_bar",
           "starmap_local", "worker_index", "workers_for"]
