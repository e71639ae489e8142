"""Type stubs of the provnn package."""

from typing import Dict, Iterable, List, Tuple

from ._provnn import (
    Circuit as Circuit,
    Error as Error,
    LimitError as LimitError,
    Model as Model,
    ParseError as ParseError,
    ProvnnIOError as ProvnnIOError,
    UnsupportedError as UnsupportedError,
    retain_freed_memory as retain_freed_memory,
    semirings as semirings,
)

__version__: str

class Polynomial(List[Tuple[int, Dict[str, int]]]):
    text: str
    def __init__(self, terms: Iterable[Tuple[int, Dict[str, int]]] = ..., text: str = ...) -> None: ...
