"""provnn: provenance circuits for Layer-wise Relevance Propagation, from Python.

    import provnn
    model = provnn.Model.load("model.onnx")          # or the bytes of an ONNX model
    relevance = model.explain(x, rule="epsilon")      # NumPy in, NumPy out (x's shape)
    circuit = model.circuit(x)                        # the same explanation as a circuit
    circuit.evaluate("boolean")                       # … evaluated in any semiring

Submodules: provnn.torch (explain a torch.nn.Module), provnn.dask (explain a Dask array of
samples on a cluster). Every error is a provnn.Error (ParseError, UnsupportedError,
LimitError, ProvnnIOError) carrying the same message as the command-line tool.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from ._provnn import (  # noqa: F401  (re-exported)
    Circuit,
    Error,
    LimitError,
    Model,
    ParseError,
    ProvnnIOError,
    UnsupportedError,
    retain_freed_memory,
    semirings,
)

__all__ = [
    "Circuit",
    "Error",
    "LimitError",
    "Model",
    "ParseError",
    "Polynomial",
    "ProvnnIOError",
    "UnsupportedError",
    "retain_freed_memory",
    "semirings",
]

__version__ = "0.1.0"


class Polynomial(list):
    """An N[X] polynomial: a list of terms (coefficient: int, {token name: exponent}) in the
    canonical order; str() gives its text, e.g. ``2·x[3]·W1[3,4] + x[1]^2``.
    Two polynomials are equal when their term lists are (the representation is unique)."""

    def __init__(self, terms: List[Tuple[int, Dict[str, int]]] = (), text: str = "0") -> None:
        super().__init__(terms)
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return format(self.text, spec)

    def __repr__(self) -> str:
        return f"Polynomial({self.text!r})"
