"""What a converted tutorial runs first, inside its own process (copied beside the script as
``_tutorial_prelude.py``, so it imports only the standard library, and pandas when it is there).

``install(url_map)`` sends exactly the URLs of ``url_map`` to their local stand-in files, through
``pandas.read_csv``, ``urllib.request.urlopen`` and ``urllib.request.urlretrieve``; any other URL
goes where it would have gone. It also gives the script Jupyter's ``display``.

``show(value)`` is how a cell's last expression is shown: its ``repr`` is printed when it is plain
data (numbers, strings, tensors, arrays, data frames, and lists, tuples and dicts of those), and
nothing is printed for anything else. Jupyter would show a figure, a widget or a graph instead, and
the ``repr`` of such an object (``<... object at 0x7f...>``) differs between Pyro and the engine
without saying anything about either.
"""

from __future__ import annotations

import builtins
import functools
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_DATA_MODULES = ("torch", "numpy", "pandas")
_MAX_DEPTH = 4
_ORIGINAL = "_tutorial_original"


def is_data(value: Any, depth: int = 0) -> bool:
    """Whether ``show`` prints this value (see the module docstring).

    >>> is_data(1.5), is_data([1, (2, "a")]), is_data({"x": [1.0]}), is_data(object())
    (True, True, True, False)
    """
    if depth > _MAX_DEPTH:
        return False
    if value is None:
        return False
    if isinstance(value, bool | int | float | complex | str | bytes):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_data(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            is_data(key, depth + 1) and is_data(item, depth + 1) for key, item in value.items()
        )
    module = type(value).__module__.split(".")[0]
    return module in _DATA_MODULES


def show(value: Any) -> None:
    """Print ``repr(value)`` when it is plain data, as the cell's output.

    >>> show([1, 2]); show(object())
    [1, 2]
    """
    if is_data(value):
        print(repr(value))


def _display(*values: Any, **_options: Any) -> None:
    for value in values:
        show(value)


def _local(url: Any, url_map: Mapping[str, str]) -> str | None:
    if isinstance(url, urllib.request.Request):
        url = url.full_url
    if isinstance(url, str):
        return url_map.get(url)
    return None


def _original(function: Any) -> Any:
    return getattr(function, _ORIGINAL, function)


def _redirecting(original: Any, url_map: Mapping[str, str], *, note: bool) -> Any:
    """``original`` with its first argument sent to the local file when it is a mapped URL."""

    @functools.wraps(original)
    def redirected(url: Any, *args: Any, **kwargs: Any) -> Any:
        local = _local(url, url_map)
        if local is None:
            return original(url, *args, **kwargs)
        if note:
            print(f"[runner] {url} -> synthetic stand-in {local}", file=sys.stderr)
        return original(local if note else Path(local).as_uri(), *args, **kwargs)

    setattr(redirected, _ORIGINAL, original)
    return redirected


def install(url_map: Mapping[str, str]) -> None:
    """Send the URLs of ``url_map`` to local files and provide ``display``.

    >>> import tempfile, urllib.request
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "x.csv"
    ...     _ = path.write_text("a,b\\n1,2\\n")
    ...     install({"https://example.org/x.csv": str(path)})
    ...     with urllib.request.urlopen("https://example.org/x.csv") as handle:
    ...         print(handle.read())
    ...     uninstall()
    b'a,b\\n1,2\\n'
    """
    url_map = dict(url_map)
    if not hasattr(builtins, "display"):
        builtins.display = _display  # type: ignore[attr-defined]
    # urllib wants a URL, so the local file goes in as a file: URI; pandas takes the path.
    for name in ("urlopen", "urlretrieve"):
        original = _original(getattr(urllib.request, name))
        setattr(urllib.request, name, _redirecting(original, url_map, note=False))
    try:
        import pandas
    except ImportError:
        return
    pandas.read_csv = _redirecting(_original(pandas.read_csv), url_map, note=True)


def uninstall() -> None:
    """Undo ``install``: the original ``urlopen``, ``urlretrieve`` and ``read_csv`` come back.

    >>> install({}); uninstall(); hasattr(urllib.request.urlopen, _ORIGINAL)
    False
    """
    for name in ("urlopen", "urlretrieve"):
        setattr(urllib.request, name, _original(getattr(urllib.request, name)))
    if getattr(builtins, "display", None) is _display:
        del builtins.display  # type: ignore[attr-defined]
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        pandas.read_csv = _original(pandas.read_csv)
