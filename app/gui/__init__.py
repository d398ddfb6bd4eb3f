"""The desktop GUI (PyQt6 + pyqtgraph): camera tiles, 3D view, controls, metrics.

The only package that imports Qt. Everything here sits on top of the headless capture core
(`app.capture`): frames and poses arrive on worker threads and reach the widgets through
latest-only slots polled by a QTimer, so the UI thread never waits on capture or inference.

    from app.gui.app import run_gui
    run_gui(GuiOptions(demo=True))
"""
