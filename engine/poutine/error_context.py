"""What a trace adds to an error raised while it records.

An error raised inside a model knows what went wrong but not where: the trace it leaves adds
the user's line (the innermost frame outside the engine and torch), the shape table of the sites
recorded so far, and, for a distribution that refused its arguments (it is checked when built,
before ``sample`` sees it), the site it was built for, read off the source, with its row last in
the table. Errors of other libraries (torch's shape errors) keep their type and message and get
the table as a note.

>>> import torch, engine, engine.distributions as dist
>>> from engine import poutine
>>> def model():
...     engine.sample("a", dist.Normal(0.0, 1.0))
...     engine.sample("y", dist.Normal(0.0, -1.0), obs=torch.tensor(0.0))
>>> try:
...     poutine.trace(model).get_trace()
... except ValueError as error:
...     print(str(error).splitlines()[0][:48])
Site 'y' (no plate): Normal: parameter 'scale' (
"""

from __future__ import annotations

from types import TracebackType

from engine.errors import DistributionArgumentError, PPLError
from engine.poutine.block_messenger import NonlocalExit
from engine.poutine.trace_struct import Trace
from engine.runtime import new_message
from engine.source_lines import observes, site_being_built, user_frames

_TABLE_NOTE_FLAG = "_pplkernel_site_table_noted"


def annotate_error(error: BaseException, trace: Trace, tb: TracebackType | None) -> None:
    """Add to ``error`` what ``trace`` knows of where it was raised (see the module doc)."""
    if isinstance(error, NonlocalExit) or not isinstance(error, Exception):
        return  # escape's control flow, or an interrupt: nothing to explain
    recorded = any(site["type"] in ("sample", "param") for site in trace.nodes.values())
    if not isinstance(error, PPLError):
        if recorded and not getattr(error, _TABLE_NOTE_FLAG, False):
            # Torch's own shape errors (a bad matmul in the model) are the commonest; a note
            # keeps their message and type intact while showing where the model had got to.
            error.add_note(trace.format_shapes(title="Sites recorded before the error"))
            setattr(error, _TABLE_NOTE_FLAG, True)
        return
    frames = user_frames(tb)
    if frames:
        frame, lineno, _ = frames[0]
        error.locate(frame.f_code.co_filename, lineno)
    if isinstance(error, DistributionArgumentError) and error.site is None:
        found = site_being_built(frames) if frames else None
        if found is not None:
            error.site = found[0]
            if error.distribution is not None:
                culprit = new_message(
                    "sample", found[0], error.distribution, is_observed=observes(found[1])
                )
                culprit["cond_indep_stack"] = tuple(reversed(error.plates))
                error.attach_site_table(
                    lambda: trace.format_shapes(culprit=culprit),
                    heading=(
                        f"Sites recorded up to the error (the last, '{found[0]}', is the site "
                        "whose distribution refused its arguments):"
                    ),
                )
                return
        if recorded:
            error.attach_site_table(
                trace.format_shapes,
                heading=(
                    "Sites recorded before the error (it was raised building the distribution "
                    "of the next site):"
                ),
            )
            return
    if recorded:
        error.attach_site_table(trace.format_shapes)


__all__ = ["annotate_error"]
