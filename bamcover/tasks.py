"""The job layer under its former name (see :mod:`bamcover.jobs`).

Task directories made before the move run ``python -m bamcover.tasks run ...`` from their
``job.sh``: run as a script, this module is the job's command line still.
"""

# re-export; removed when callers move
import sys

from .errors import BamcoverError
from .jobs.backends import (
    ACTIVE,
    DONE,
    LocalExecutor,
    SlurmExecutor,
    executor_from_dict,
)
from .jobs.calls import qualified, reduce_results, resolve
from .jobs.index import index_dir
from .jobs.lookup import find, list_tasks
from .jobs.results import decode_result, load_result, result_record, save_result
from .jobs.runner import Terminated, main, run_chunk
from .jobs.stamps import unchanged
from .jobs.task import Task, TaskGroup, submit

__all__ = ["ACTIVE", "DONE", "BamcoverError", "LocalExecutor", "SlurmExecutor", "Task",
           "TaskGroup", "Terminated", "decode_result", "executor_from_dict", "find",
           "index_dir", "list_tasks", "load_result", "main", "qualified", "reduce_results",
           "resolve", "result_record", "run_chunk", "save_result", "submit", "unchanged"]

if __name__ == "__main__":
    sys.exit(main())
