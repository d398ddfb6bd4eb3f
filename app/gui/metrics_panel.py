"""The metrics panel: plots over time of per-camera fps, sync skew, end-to-end latency with its
stages, and pose rate (pyqtgraph)."""

from __future__ import annotations

import pyqtgraph as pg
from PyQt6 import QtWidgets

from app.gui.history import History

# The worker's "process" is the sum of the pipeline's own stages, which are plotted instead.
HIDDEN_STAGES = ("process",)
_PALETTE = [(0, 150, 255), (255, 140, 0), (80, 200, 80), (220, 60, 200), (240, 220, 40), (150, 150, 150),
            (0, 220, 220), (255, 90, 90)]


class MetricsPanel(QtWidgets.QWidget):
    """Four plots in a 2x2 grid sharing the time axis (seconds since the capture started);
    each y axis starts at zero so rates and delays compare at a glance."""

    def __init__(self, history: History, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.t0: float | None = None
        self.layout_widget = pg.GraphicsLayoutWidget()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layout_widget)
        self.plots: dict[str, pg.PlotItem] = {}
        for i, (key, title, unit) in enumerate((
            ("fps", "Camera frame rate", "fps"),
            ("latency", "Latency and its stages", "ms"),
            ("skew", "Sync skew", "ms"),
            ("pose", "Pose rate", "poses/s"),
        )):
            plot = self.layout_widget.addPlot(row=i // 2, col=i % 2, title=f"<span style='font-size:9pt'>{title}</span>")
            plot.setLabel("left", unit)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.addLegend(offset=(-5, 5), labelTextSize="7pt", colCount=2)
            plot.setMouseEnabled(x=False, y=False)
            if i:
                plot.setXLink(self.plots["fps"])
            self.plots[key] = plot
        for key in ("skew", "pose"):
            self.plots[key].setLabel("bottom", "time", "s")
        self.curves: dict[str, pg.PlotDataItem] = {}

    def _curve(self, plot: str, name: str, label: str) -> pg.PlotDataItem:
        if name not in self.curves:
            colour = _PALETTE[sum(1 for n in self.curves if n.startswith(plot + ":")) % len(_PALETTE)]
            self.curves[name] = self.plots[plot].plot(name=label, pen=pg.mkPen(colour, width=2))
        return self.curves[name]

    def clear(self) -> None:
        for plot in self.plots.values():
            plot.clear()
            if plot.legend is not None:
                plot.legend.clear()
        self.curves = {}
        self.t0 = None

    def refresh(self) -> None:
        """Redraw every curve from the history."""
        names = self.history.names()
        if not names:
            return
        if self.t0 is None:
            self.t0 = min(self.history.series(n)[0][0] for n in names)
        top: dict[str, float] = {}
        for name in names:
            plot, _, label = name.partition(":")
            if plot == "latency" and label in HIDDEN_STAGES:
                continue
            t, v = self.history.series(name)
            self._curve(plot, name, label).setData(t - self.t0, v)
            top[plot] = max(top.get(plot, 0.0), float(v.max()) if v.size else 0.0)
        for key, value in top.items():
            self.plots[key].setYRange(0.0, max(value * 1.15, 1e-3), padding=0)
