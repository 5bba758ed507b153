"""The engine's exceptions, and the small helpers that word them.

Every error a user can cause names the site, the plates and the shapes involved and says how to fix
it. They subclass the builtin exception a Pyro user would catch (``ValueError`` mostly), so existing
``except ValueError`` code keeps working. When one is raised while a ``trace`` is recording, the
trace attaches the shape table of the sites seen so far (see :meth:`PPLError.attach_site_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence


class PPLError(Exception):
    """Base of the engine's own errors: a message plus, optionally, the sites recorded so far.

    >>> str(PPLError("bad"))
    'bad'
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self._render_site_table: Callable[[], str] | None = None

    def attach_site_table(self, render: Callable[[], str]) -> None:
        """Attach the shape table of the sites seen before the error (the innermost trace wins).

        The table is rendered only when the message is read, so errors that are caught and
        handled cost nothing extra.
        """
        if self._render_site_table is None:
            self._render_site_table = render

    @property
    def site_table(self) -> str | None:
        return None if self._render_site_table is None else self._render_site_table()

    def __str__(self) -> str:
        table = self.site_table
        if not table:
            return self.message
        return f"{self.message}\n\nSites recorded before the error:\n{table}"


class ShapeError(PPLError, ValueError):
    """A site's shapes do not fit its plates or its observed value."""


class SiteNameError(PPLError, ValueError, RuntimeError):
    """Two sites in one run share a name (a ``RuntimeError`` too, as Pyro raises)."""


class PlateError(PPLError, ValueError):
    """Plates that collide: the same dim, or the same name with different sizes."""


class EnumerationError(PPLError, ValueError):
    """Enumerated sites are used in a way exact marginalisation cannot follow."""


def markov_window_error(site: dict, holder: str, dim: int) -> EnumerationError:
    """The error for a site that depends on an enumerated site outside its markov window.

    >>> site = {"name": "x_2", "cond_indep_stack": (), "infer": {}}
    >>> str(markov_window_error(site, "x_0", -1))[:37]
    "Site 'x_2' (no plate) depends on enum"
    """
    window = sorted(site["infer"].get("_markov_scope", ()))
    return EnumerationError(
        f"Site {describe_site(site)} depends on enumerated site '{holder}' (dim {dim}), which is "
        f"outside its markov window {window}, so that dim may already hold another site's "
        "values. Raise `history` in markov(...) so the window reaches back that far, or stop "
        "the dependence."
    )


class DistributionArgumentError(PPLError, ValueError):
    """A distribution was given parameters outside their constraints."""


class SupportError(PPLError, ValueError):
    """An observed or initial value lies outside the support it must live in."""


class ParamError(PPLError, ValueError):
    """A ``param`` declared inconsistently (another constraint, an infeasible initial value)."""


class ModuleError(PPLError, TypeError, ValueError):
    """A ``PyroModule`` attribute declared with something it cannot use (a prior that is neither
    a distribution nor a function of the module), or a module tree it cannot name. A
    ``TypeError`` too, as Pyro raises for such a prior."""


def fmt_shape(shape: Iterable[int]) -> str:
    """Write a shape the way users type it.

    >>> fmt_shape((3, 1)), fmt_shape(()), fmt_shape([5])
    ('(3, 1)', '()', '(5,)')
    """
    dims = tuple(int(d) for d in shape)
    return str(dims)


def describe_plates(frames: Sequence) -> str:
    """Describe a site's plates, outermost first, for an error message.

    >>> from engine.runtime import CondIndepStackFrame
    >>> describe_plates([CondIndepStackFrame("data", -1, 5, 0, 10)])
    "plate 'data' (size 5 of 10, dim -1)"
    >>> describe_plates([])
    'no plate'
    """
    if not frames:
        return "no plate"
    parts = []
    for frame in frames:
        size = f"size {frame.size}"
        if frame.full_size is not None and frame.full_size != frame.size:
            size += f" of {frame.full_size}"
        where = f"dim {frame.dim}" if frame.vectorized else "sequential"
        parts.append(f"plate '{frame.name}' ({size}, {where})")
    return ", ".join(parts)


def index_with_plate_hint(frame) -> str:
    """The fix for data that still has every row inside a subsampled plate.

    >>> from engine.runtime import CondIndepStackFrame
    >>> index_with_plate_hint(CondIndepStackFrame("data", -1, 10, 0, 100))[:28]
    "Plate 'data' is subsampled t"
    """
    return (
        f"Plate '{frame.name}' is subsampled to {frame.size} of {frame.full_size}: index the "
        f"data with the plate's indices (`with plate('{frame.name}', ...) as idx: ... "
        "data[idx]`)."
    )


def describe_site(site: dict) -> str:
    """Name a site and its plates for an error message.

    >>> describe_site({"name": "x", "cond_indep_stack": ()})
    "'x' (no plate)"
    """
    return f"'{site['name']}' ({describe_plates(site['cond_indep_stack'])})"
