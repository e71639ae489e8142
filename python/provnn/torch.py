"""Explain a ``torch.nn.Module`` without touching files: the module is exported to ONNX in
memory (opset 13, eval mode) and imported by provnn.

    import torch, provnn.torch
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    relevance = provnn.torch.explain(net, torch.randn(5, 4), rule="epsilon")   # (5, 4) ndarray

Only what provnn's ONNX importer supports can be explained (Linear, Conv2d, ReLU, MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d(1), Flatten, BatchNorm after a linear layer, Dropout, a trailing
Softmax); anything else raises provnn.UnsupportedError naming the ONNX node.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

import provnn

__all__ = ["export_onnx", "load", "explain", "circuit"]


def _example(module: Any, x: Any):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    try:
        dtype = next(module.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    t = t.detach().to(dtype)
    if t.dim() == 0:
        raise provnn.Error("provnn.torch: x must have a batch axis, e.g. shape (N, features)")
    return t


def export_onnx(module: Any, x: Any, opset: int = 13) -> bytes:
    """The bytes of ``module`` exported to ONNX (opset ``opset``) in eval mode, traced on the
    first sample of the batch ``x`` (shape (N, *input_shape)); the batch axis is dynamic.
    The module's training flag is restored afterwards."""
    import torch

    t = _example(module, x)
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                (t[:1],),
                buffer,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                do_constant_folding=True,
            )
    finally:
        module.train(was_training)
    return buffer.getvalue()


def load(module: Any, x: Any, opset: int = 13) -> "provnn.Model":
    """``provnn.Model.load(export_onnx(module, x, opset))``."""
    return provnn.Model.load(export_onnx(module, x, opset))


def explain(module: Any, x: Any, **kw: Any) -> np.ndarray:
    """LRP relevance of every input feature of every sample of the batch ``x`` (a torch
    tensor or array of shape (N, *input_shape)) for ``module``: a float64 ndarray of x's shape.
    Keyword arguments are those of provnn.Model.explain (rule, composite, rules, target, bias)
    plus ``opset`` (13)."""
    opset = kw.pop("opset", 13)
    model = load(module, x, opset)
    return model.explain(_example(module, x).double().cpu().numpy(), **kw)


def circuit(module: Any, x: Any, **kw: Any) -> "provnn.Circuit":
    """The provenance circuit of one sample ``x`` (shape (1, *input_shape)); keyword arguments
    as provnn.Model.circuit plus ``opset``."""
    opset = kw.pop("opset", 13)
    model = load(module, x, opset)
    return model.circuit(_example(module, x).double().cpu().numpy()[0], **kw)
