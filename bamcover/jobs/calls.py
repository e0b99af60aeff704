"""What a task calls, by name: its function (``module:qualname``, importable wherever the
job runs) and the reduction that combines its chunks' results."""

from __future__ import annotations

import collections
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from .._lazy import pd
from ..errors import BamcoverError


def qualified(func: Callable | str) -> str:
    """The importable name of a task function.

    Parameters
    ----------
    func : Callable or str
        A function defined at the top of a module, or its name already.

    Returns
    -------
    str
        ``module:qualname``.

    Raises
    ------
    BamcoverError
        The function lives in ``__main__`` or in a closure, where a job cannot import it.
    """
    if isinstance(func, str):
        return func
    name = f"{func.__module__}:{func.__qualname__}"
    if func.__module__ == "__main__" or "<locals>" in func.__qualname__:
        raise BamcoverError(f"{name}: a task function must be importable by its module "
                            "(define it in a module, not in __main__ or a closure)")
    return name


def resolve(name: str) -> Callable:
    """The object a ``module:qualname`` names.

    Parameters
    ----------
    name : str
        ``module:qualname``.

    Returns
    -------
    Callable
        The object, imported.
    """
    module, _, qual = name.partition(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def reduce_results(results: Sequence[Any], how: str) -> Any:
    """Combine the results of a task's chunks.

    Parameters
    ----------
    results : Sequence
        The chunks' results, in chunk order.
    how : str
        ``sum`` (arrays, dicts of arrays, Counters, numbers), ``concat`` (DataFrames),
        ``list``, or a ``module:function`` taking the list.

    Returns
    -------
    Any
        The combined result.
    """
    if how == "list":
        return list(results)
    if how == "concat":
        return pd.concat(results, ignore_index=True)
    if how == "sum":
        first = results[0]
        if isinstance(first, dict) and not isinstance(first, collections.Counter):
            return {k: sum(r[k] for r in results) for k in first}
        total = first.copy() if hasattr(first, "copy") else first
        for r in results[1:]:
            total = total + r
        return total
    return resolve(how)(list(results))
