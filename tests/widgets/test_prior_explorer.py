"""The prior explorer's sliders redraw the picture; a failing redraw keeps the last one."""

import base64

import ipywidgets
import torch

from widgets.predictive_check import PredictiveCheck
from widgets.predictive_draws import PredictiveDraws
from widgets.prior_explorer import Hyperparameter, PriorExplorer


def shifted(values):
    """A check whose replicas are exactly the slider's value (no randomness to wait out)."""
    if values["loc"] > 2.0:
        raise ValueError("loc above 2 is refused")
    replicas = torch.full((20, 4), float(values["loc"]))
    return PredictiveCheck(PredictiveDraws("prior", {"y": None}, {"y": replicas}, {"y": False}))


def test_moving_a_slider_redraws():
    explorer = PriorExplorer([Hyperparameter("loc", -3.0, 3.0, 0.0)], shifted, title="t")
    first = bytes(explorer.image.value)
    assert explorer.check.statistics["y"]["mean"]["median"] == 0.0
    explorer.sliders["loc"].value = 1.5
    assert explorer.check.statistics["y"]["mean"]["median"] == 1.5
    now = bytes(explorer.image.value)
    assert now != first and now.startswith(b"\x89PNG")
    assert "1.5" in explorer.message.value


def test_a_failing_redraw_keeps_the_last_picture_and_says_why():
    explorer = PriorExplorer([Hyperparameter("loc", -3.0, 3.0, 1.0)], shifted)
    picture = bytes(explorer.image.value)
    explorer.sliders["loc"].value = 2.5
    assert bytes(explorer.image.value) == picture
    assert explorer.check.statistics["y"]["mean"]["median"] == 1.0
    assert "ValueError: loc above 2 is refused" in explorer.message.value


def test_whole_numbers_get_an_integer_slider_and_sliders_update_on_release():
    explorer = PriorExplorer(
        [Hyperparameter("loc", -3, 3, 1, whole=True), Hyperparameter("s", 0.0, 1.0, 0.5)],
        lambda values: shifted({"loc": values["loc"] * values["s"]}),
    )
    assert isinstance(explorer.sliders["loc"], ipywidgets.IntSlider)
    assert isinstance(explorer.sliders["s"], ipywidgets.FloatSlider)
    assert not any(slider.continuous_update for slider in explorer.sliders.values())


def test_the_static_fallback_shows_the_figure_at_the_slider_values():
    explorer = PriorExplorer([Hyperparameter("loc", -3.0, 3.0, 0.5)], shifted)
    data, _ = explorer._repr_mimebundle_()
    html = data["text/html"]
    assert "loc = 0.5" in html
    encoded = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded) == bytes(explorer.image.value)
