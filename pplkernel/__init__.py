"""pplkernel: the notebook face of the engine. ``%load_ext pplkernel`` (or the "Python 3
(pplkernel)" kernel, which loads it) registers ``%%model``, ``%%guide``, ``%svi``, ``%mcmc``,
``%trace`` and ``%ppl`` and puts ``ppl``, ``dist``, ``constraints`` and ``torch`` into the
notebook where those names are free.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    """Called by ``%load_ext pplkernel``."""
    from pplkernel.extension import load

    load(shell)
