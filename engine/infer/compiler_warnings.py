"""The warnings torch's compiler raises about its own workings, silenced while it compiles.

They are none of the user's business, and where warnings are errors (Pyro's test setup, a
user's ``-W error``) they would stop the run, or make the compiler give up: ``torch.compile``
calls torch's own deprecated private helpers (``torch._prims_common.check`` when lowering a
Cholesky factor), and reads ``.grad`` of every tensor it meets, hiding the non-leaf warning that
read gives only from ``showwarning``, which an "error" filter never reaches.

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("error")
...     with torch_compiler_warnings_ignored():
...         warnings.warn("`torch._prims_common.check` is deprecated", FutureWarning)
...         warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
...                       "accessed. Its .grad attribute won't be populated")
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

_NON_LEAF_GRAD = r"The \.grad attribute of a Tensor that is not a leaf Tensor is being accessed"


@contextlib.contextmanager
def torch_compiler_warnings_ignored() -> Iterator[None]:
    """Ignore, inside the block, the warnings torch's compiler raises about its own workings."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", message=r"`?torch\._", category=category)
        warnings.filterwarnings("ignore", message=_NON_LEAF_GRAD, category=UserWarning)
        yield
