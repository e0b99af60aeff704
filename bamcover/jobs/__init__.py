"""The job layer: run a function over chunks of work as a task on a backend (a Slurm job
array, or a background process here), follow, cancel, resubmit and collect it.

``task`` holds tasks and their directories, ``index`` finds them by id, ``backends``
where chunks run, ``slurm`` the Slurm commands, ``runner`` what runs inside a job,
``results`` the files a job writes, ``calls`` and ``stamps`` what a job calls and the
inputs it reads.
"""

from .backends import Backend, LocalBackend, LocalExecutor, SlurmBackend, SlurmExecutor
from .index import index_dir
from .lookup import find, list_tasks
from .task import Task, TaskGroup, submit

__all__ = ["Backend", "LocalBackend", "LocalExecutor", "SlurmBackend", "SlurmExecutor",
           "Task", "TaskGroup", "find", "index_dir", "list_tasks", "submit"]
