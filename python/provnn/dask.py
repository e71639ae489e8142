"""Explain a data set on a Dask cluster: samples along the first axis of a Dask array, one
task per chunk of samples, every worker process loading the model once.

    import dask.array as da, provnn.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")                 # any distributed cluster
    x = da.from_array(samples, chunks=(256, 64))             # (N, *input_shape)
    relevance = provnn.dask.explain("model.onnx", x, rule="epsilon").compute()

The model path must be readable by every worker (a shared file system, or the same path on
every machine).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

import provnn

__all__ = ["explain", "evaluate", "load_model"]


@functools.lru_cache(maxsize=8)
def load_model(path: str) -> "provnn.Model":
    """The model at ``path``, loaded once per process (an LRU cache keyed by the path)."""
    return provnn.Model.load(path)


def _explain_block(block: np.ndarray, path: str, kw: dict) -> np.ndarray:
    if block.shape[0] == 0:
        return np.zeros(block.shape, dtype=np.float64)
    return load_model(path).explain(np.ascontiguousarray(block, dtype=np.float64), **kw)


def _evaluate_block(block: np.ndarray, path: str, semiring: str, kw: dict, ckw: dict) -> np.ndarray:
    model = load_model(path)
    out = np.zeros(block.shape, dtype=np.float64)
    for i in range(block.shape[0]):
        c = model.circuit(np.ascontiguousarray(block[i], dtype=np.float64), **kw)
        out[i] = np.asarray(c.evaluate(semiring, **ckw)).reshape(block.shape[1:])
    return out


def _prepare(model_path: Any, array: Any):
    import dask.array as da

    path = os.path.abspath(os.fspath(model_path))
    arr = da.asarray(array)
    if arr.ndim < 2:
        raise provnn.Error(
            f"provnn.dask: expected samples along the first axis, shape (N, *input_shape); got shape {arr.shape}"
        )
    # One task per chunk of samples: the feature axes must be whole.
    arr = arr.rechunk({axis: -1 for axis in range(1, arr.ndim)})
    return path, arr


def explain(model_path: Any, array: Any, **kw: Any):
    """A Dask array (float64, the shape and sample chunks of ``array``) of the LRP relevance of
    every sample; keyword arguments as provnn.Model.explain (rule, composite, rules, target,
    bias). Lazy: call .compute() (or store it) to run it on the current Dask scheduler."""
    path, arr = _prepare(model_path, array)
    return arr.map_blocks(_explain_block, path, kw, dtype=np.float64)


def evaluate(model_path: Any, array: Any, semiring: str = "boolean", valuation=None, edge_annotation=None, **kw: Any):
    """Per-sample evaluation of each sample's provenance circuit in a numeric semiring (boolean,
    counting, viterbi, …): a Dask array of float64 with the shape of ``array``. Keyword
    arguments as provnn.Model.circuit (single-target); valuation and edge_annotation as
    provnn.Circuit.evaluate."""
    path, arr = _prepare(model_path, array)
    ckw = {"valuation": valuation, "edge_annotation": edge_annotation}
    return arr.map_blocks(_evaluate_block, path, semiring, kw, ckw, dtype=np.float64)
