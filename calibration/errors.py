"""The one exception type a user can cause, shared by every layer."""


class TriangulumError(Exception):
    """An error the user can fix: bad file, missing camera, wrong resolution, no person.

    The message is a full sentence that names the thing (file, camera, field) and says
    what to do. The CLI prints it without a traceback; the GUI shows it in the window.
    """
