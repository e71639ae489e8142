"""Type stubs of the native core of provnn (see provnn/__init__.py for the package)."""

import os
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import Polynomial

_Path = Union[str, "os.PathLike[str]"]
_Feature = Union[int, Tuple[int, ...], str]
_Target = Union[None, str, int, npt.ArrayLike]
_Monomial = Dict[str, int]

class Error(RuntimeError): ...
class ParseError(Error): ...
class UnsupportedError(Error): ...
class LimitError(Error): ...
class ProvnnIOError(Error): ...

class Model:
    """A network imported from ONNX."""

    @staticmethod
    def load(path_or_bytes: Union[_Path, bytes, bytearray, memoryview]) -> "Model": ...
    @property
    def input_shape(self) -> Tuple[int, ...]: ...
    @property
    def output_shape(self) -> Tuple[int, ...]: ...
    @property
    def source(self) -> str: ...
    @property
    def layers(self) -> List[Dict[str, Any]]: ...
    def predict(self, x: npt.ArrayLike) -> np.ndarray: ...
    def explain(
        self,
        x: npt.ArrayLike,
        *,
        rule: str = "epsilon",
        composite: Optional[str] = None,
        rules: Optional[Mapping[Union[int, str], str]] = None,
        target: _Target = None,
        bias: bool = True,
        precision: Literal["fp64", "fp32"] = "fp64",
    ) -> np.ndarray: ...
    def layer_relevances(
        self,
        x: npt.ArrayLike,
        *,
        rule: str = "epsilon",
        composite: Optional[str] = None,
        rules: Optional[Mapping[Union[int, str], str]] = None,
        target: _Target = None,
        bias: bool = True,
    ) -> List[np.ndarray]: ...
    def circuit(
        self,
        x: npt.ArrayLike,
        *,
        rule: str = "epsilon",
        composite: Optional[str] = None,
        rules: Optional[Mapping[Union[int, str], str]] = None,
        target: _Target = None,
        bias: bool = True,
        targets: Optional[Sequence[int]] = None,
        input: str = "<array>",
        max_gates: int = 2**31,
        max_memory: int = 8 * 2**30,
        layout: str = "plain",
    ) -> "Circuit": ...

class Circuit:
    """A provenance circuit of LRP."""

    @staticmethod
    def load(path: _Path) -> "Circuit": ...
    def save(self, path: _Path) -> None: ...
    @property
    def input_shape(self) -> Tuple[int, ...]: ...
    def evaluate(
        self,
        semiring: str = "real",
        *,
        valuation: Optional[Mapping[str, float]] = None,
        edge_annotation: Optional[str] = None,
        max_terms: int = 1000000,
    ) -> Union[np.ndarray, List[Any]]: ...
    def polynomial(self, feature: _Feature, max_monomials: int = 100000) -> Polynomial: ...
    def top_paths(self, k: int, feature: Optional[_Feature] = None) -> List[Tuple[float, _Monomial]]: ...
    def to_dot(self, feature: Optional[_Feature] = None, max_gates: int = 200) -> str: ...
    def tokens(self) -> Dict[str, float]: ...
    def info(self) -> Dict[str, Any]: ...

def semirings() -> List[Dict[str, Any]]: ...
def retain_freed_memory() -> bool: ...
