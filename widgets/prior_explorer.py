"""The prior explorer: one slider per hyperparameter; moving one redraws the prior predictive.

The view is classic ipywidgets (sliders, an ``Image`` holding the PNG of the current
:class:`~widgets.predictive_check.PredictiveCheck`, its summary below): the image is a trait,
so a saved notebook keeps the last picture, and the static fallback (``text/html``) shows the
figure at the values the sliders hold. A slider redraws when it is released, not at every
pixel of a drag (``continuous_update=False``): each redraw runs the model a few hundred times.

What a set of values means is the caller's business: ``draw(values)`` returns the check for
them (``%prior`` binds model arguments and rebinds notebook constants around the draw). A
redraw that fails keeps the last picture and shows the error under it.

>>> from widgets.predictive_draws import PredictiveDraws
>>> import torch
>>> def draw(values):
...     data = torch.full((4, 3), values["mu0"])
...     return PredictiveCheck(PredictiveDraws("prior", {"y": None}, {"y": data}, {"y": False}))
>>> explorer = PriorExplorer([Hyperparameter("mu0", -1.0, 1.0, 0.0)], draw)
>>> explorer.sliders["mu0"].value = 0.5
>>> explorer.check.statistics["y"]["mean"]["median"]
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets

from widgets.html import HtmlFallback, escape
from widgets.predictive_check import PredictiveCheck


@dataclass(frozen=True)
class Hyperparameter:
    """One slider: the name, its range, its starting value, and whether it takes whole
    numbers.

    >>> Hyperparameter("n", 1, 9, 5, whole=True).step
    1
    """

    name: str
    low: float
    high: float
    value: float
    whole: bool = False

    @property
    def step(self) -> float:
        return 1 if self.whole else (self.high - self.low) / 100


class PriorExplorer(HtmlFallback, ipywidgets.VBox):
    """Sliders for ``hyperparameters`` over the figure ``draw(values)`` returns."""

    def __init__(
        self,
        hyperparameters: list[Hyperparameter],
        draw: Callable[[dict[str, float]], PredictiveCheck],
        title: str = "",
    ):
        self._draw = draw
        self.sliders: dict[str, Any] = {}
        for spec in hyperparameters:
            kind = ipywidgets.IntSlider if spec.whole else ipywidgets.FloatSlider
            slider = kind(
                value=spec.value,
                min=spec.low,
                max=spec.high,
                step=spec.step,
                description=spec.name,
                continuous_update=False,
                readout_format="d" if spec.whole else ".3g",
            )
            self.sliders[spec.name] = slider
        self.image = ipywidgets.Image(format="png")
        self.message = ipywidgets.HTML()
        self.header = ipywidgets.HTML(f"<b>{escape(title)}</b>" if title else "")
        self.check: PredictiveCheck = draw(self.values)  # the first picture must work
        self._show(self.check)
        super().__init__([self.header, *self.sliders.values(), self.image, self.message])
        for slider in self.sliders.values():
            slider.observe(self._redraw, names="value")

    @property
    def values(self) -> dict[str, float]:
        """The sliders' current values, by hyperparameter name."""
        return {name: slider.value for name, slider in self.sliders.items()}

    def _redraw(self, change: Any = None) -> None:
        try:
            check = self._draw(self.values)
        except Exception as error:  # a value the model refuses: keep the last picture
            self.message.value = (
                f"<pre>{escape(type(error).__name__)}: {escape(str(error))} "
                "(the picture shows the last values that worked)</pre>"
            )
            return
        self._show(check)

    def _show(self, check: PredictiveCheck) -> None:
        self.check = check
        self.image.value = check.png()
        self.message.value = f"<pre>{escape(check.summary())}</pre>"

    def to_html(self) -> str:
        """The figure at the sliders' values, with the values written out."""
        values = ", ".join(f"{name} = {value:.4g}" for name, value in self.values.items())
        return f"<div><p>{escape(values)}</p>{self.check.to_html()}</div>"
