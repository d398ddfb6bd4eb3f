"""Live capture core: camera sources, grabber threads, synchronisation, recording, playback,
the pose worker and the live output stream. Headless; the GUI sits on top of this package.

    CameraSource --Grabber thread--> Frame --> SyncBuffer --> FrameSet --> PoseWorker --> PoseFrame
                                          \\-> Recorder (every frame of every camera)

`live.LiveCapture` wires these together for the CLI, the benchmark and the GUI.
"""
