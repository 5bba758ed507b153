"""Curriculum notebook 06 (shapes) runs top to bottom, its exercises' folded solutions included,
under nbclient with the installed "Python 3 (pplkernel)" kernel, and what it teaches holds: the
shapes it prints are the ones the rules give (sample + batch + event, plates broadcasting at
their dims), the log-densities it shows agree with the Normal's closed form, and each shape error
it makes on purpose names the site, the plates and the shapes, with the fix."""

import math
import re

import nbformat
import pytest
from notebook_runs import execute, printed, widget_states

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# float32 holds about 7 significant digits: a log-density near -700, summed from a few dozen
# terms, is good to about 24 * 2^-24 * 700 = 1e-3 at worst; the notebook prints 3 or 4 decimals.
SUM_TOLERANCE = 2e-3


def line(text: str, label: str) -> str:
    """The one printed line that starts with ``label``, without it."""
    (found,) = [row for row in text.splitlines() if row.startswith(label)]
    return found[len(label) :]


def values(text: str, label: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", line(text, label))]


def normal_log_density(x: float, loc: float, scale: float) -> float:
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def errors(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Each error output as (the cell's source, the message the user reads): the exception's
    type and text, as the traceback's last line shows them (a magic shows one line: the message)."""
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "error":
                if output.ename == "MagicError":
                    message = ANSI.sub("", output.traceback[0])
                else:
                    message = f"{output.ename}: {output.evalue}"
                found.append((cell.source, message))
    return found


def widget_rows(notebook: nbformat.NotebookNode, title: str) -> dict[str, tuple[str, str]]:
    state = [s for s in widget_states(notebook) if s.get("title") == title][-1]
    return {row["site"]: (row["value"], row["plates"]) for row in state["sites"]}


@pytest.mark.slow
def test_shapes_notebook_prints_the_rules_checks_log_densities_and_reads_the_errors():
    notebook = execute("06_shapes.ipynb")
    text = printed(notebook)
    # Sample + batch + event: 7 weeks of 3 thermometers, 10 draws of a 2-vector, one 3-vector.
    assert line(text, "thermometers ") == "batch (3,) event () value (7, 3) log_prob (7, 3)"
    assert line(text, "seedling ") == "batch () event (2,) value (10, 2) log_prob (10,)"
    assert line(text, "room batch") == " () event (3,) value (3,) log_prob ()"
    # to_event and Independent sum the three Normal(loc, 0.5) log-densities; the locations are
    # the notebook's thermometers (18, 21, 24), the reading the one it printed.
    noon = values(text, "noon reading")
    closed_form = sum(
        normal_log_density(x, loc, 0.5) for x, loc in zip(noon, [18.0, 21.0, 24.0], strict=True)
    )
    to_event, independent, by_hand = values(text, "room log-density to_event")
    assert to_event == independent == pytest.approx(closed_form, abs=1e-3)
    assert by_hand == pytest.approx(closed_form, abs=1e-3)
    # The greenhouse's plates: benches at -2 broadcast the bench effect to (4, 1), both plates
    # the heights to (4, 6).
    table = text.split("Trace shapes\n")[1]  # the greenhouse's, the first one printed
    assert re.search(
        r"bench\s+sample\s+Normal\s+\(4, 1\)\s+\(\)\s+\(4, 1\)\s+\(4, 1\)\s+"
        r"benches@-2\n",
        table,
    )
    assert re.search(
        r"height\s+observed\s+Normal\s+\(4, 6\)\s+\(\)\s+\(4, 6\)\s+\(4, 6\)\s+"
        r"benches@-2 pots@-1\n",
        table,
    )
    engine_sum, hand_sum = values(text, "greenhouse log-density engine")
    assert engine_sum == pytest.approx(hand_sum, abs=SUM_TOLERANCE)
    # Free dims go right to left in the order the plates are entered.
    assert line(text, "free dims") == " benches -1 pots -2 value (6, 4)"
    # A plate of 8 at dim -3 adds a dim on the left of every site and nothing else.
    assert line(text, "eight draws") == " mean (8, 1, 1) bench (8, 4, 1) height log_prob (8, 4, 6)"
    assert math.isfinite(values(text, "eight particles loss")[0])
    # The inspector showed the same shapes (the %%model cell), and %trace those of two benches.
    assert widget_rows(notebook, "model greenhouse") == {
        "mean": ("()", ""),
        "bench": ("(4, 1)", "benches@-2"),
        "height": ("(4, 6)", "benches@-2 pots@-1"),
    }
    assert widget_rows(notebook, "trace of greenhouse")["height"] == (
        "(2, 6)",
        "benches@-2 pots@-1",
    )
    assert widget_rows(notebook, "model all_pots")["height"] == ("(24,)", "pots@-1")
    # Fixes: the height's batch shape fits both plates; the slopes are one draw whose
    # log-density is the sum of two standard Normal ones; each height is scored once.
    assert line(text, "fixed height batch") == " (4, 6)"
    assert line(text, "slopes log_prob shape").startswith(" () engine")
    slopes_engine, slopes_hand = values(text, "slopes log_prob shape ()")
    assert slopes_engine == pytest.approx(slopes_hand, abs=1e-3)
    heights_engine, heights_hand, repeated = values(text, "heights log-density engine")
    assert heights_engine == pytest.approx(heights_hand, abs=SUM_TOLERANCE)
    assert repeated == pytest.approx(24 * heights_hand, abs=24 * SUM_TOLERANCE)

    shown = errors(notebook)
    assert len(shown) == 6, [message[:80] for _, message in shown]
    nesting, column, vector, slopes, twice, clash = (message for _, message in shown)
    assert nesting.startswith(
        "PlateError: max_plate_nesting=1 is too small: plate 'benches' (size 4) asks for dim -2,"
        " where the 8 vectorised draws go"
    )
    assert "Fix: max_plate_nesting=2 or more" in nesting
    assert "_num_particles" not in nesting
    assert column.startswith(
        "ShapeError: Observed site 'height' (plate 'pots' (size 24, dim -1)): the observed value "
        "has shape (24, 1), the Normal has batch shape (24,)"
    )
    for part in ("(24, 24) instead of (24,)", "obs.squeeze(-1)", "%%model all_pots, line 3"):
        assert part in column
    assert vector.startswith(
        "ShapeError: Site 'height' does not fit its plates: its Normal has batch shape (4,), whose"
        " dim -1 has size 4, but plate 'pots' puts size 6 at dim -1."
    )
    assert re.search(r"Raised at line 5 of cell In\[\d+\]\.", vector)
    assert slopes.startswith(
        "ShapeError: Site 'slopes' (no plate): its log-prob has shape (2,); dim -1 (size 2) "
        "belongs to no plate"
    )
    assert "`.to_event(1)`" in slopes
    assert twice.startswith(
        "ShapeError: Observed site 'height' (plate 'pots' (size 24, dim -1)): the observed value "
        "has shape (24,), the Normal.to_event(1) has batch shape (24,) and event shape (24,)."
    )
    assert "the data is counted 24 times" in twice and "Fix: drop the `.to_event(...)`" in twice
    assert clash.startswith(
        "PlateError: Plate 'pots' (size 6) asks for dim -1, which plate 'benches' (size 4) "
        "already holds."
    )
    assert re.search(r"Raised at line 5 of cell In\[\d+\]\.", clash)

    # Exercise 1: plates give the batch (24, 5), the pair is the event (2,).
    assert line(text, "ex1 pair") == " value (24, 5, 2) log_prob (24, 5)"
    # Exercise 2: the flattened readings' error names the site, both plates and the shapes; the
    # fixed model's log-density is the closed form's.
    ex2_error = line(text, "ex2 error: ")
    assert ex2_error.startswith(
        "Observed site 'reading' (plate 'benches' (size 4, dim -2), plate 'times' (size 4, dim "
        "-1)): the observed value has shape (16, 1), the Normal has batch shape (4, 4)"
    )
    ex2_engine, ex2_hand = values(text, "ex2 log-density engine")
    assert ex2_engine == pytest.approx(ex2_hand, abs=SUM_TOLERANCE)
