"""`triangulum process`: recorded multi-view video -> 3D skeletons, files, overlays, report.

    inputs       what to read: a session folder, videos + calibration, or the built-in sample
    reader       frame sets in lock-step (decoded ahead on a second thread)
    association  which 2D person is which 3D person, across views and over time
    handedness   views whose left/right labels are swapped, found and relabelled
    reconstruct  triangulation methods (algebraic, robust, ransac, plain DLT)
    pipeline     the per-frame pipeline (the PoseWorker protocol: live capture runs it too)
    take         a whole take: the per-frame pipeline, then whole-take passes
    outputs, report, plots, overlay   the files written
"""
