import os
from typing import Any, Mapping, Optional, Union

import provnn

def load_model(path: str) -> provnn.Model: ...
def explain(model_path: Union[str, "os.PathLike[str]"], array: Any, **kw: Any) -> Any: ...
def evaluate(
    model_path: Union[str, "os.PathLike[str]"],
    array: Any,
    semiring: str = "boolean",
    valuation: Optional[Mapping[str, float]] = None,
    edge_annotation: Optional[str] = None,
    **kw: Any,
) -> Any: ...
