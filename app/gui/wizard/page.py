"""The base of the wizard's pages: the shared state, a message bar, a background job."""

from __future__ import annotations

from PyQt6 import QtWidgets

from app.gui.wizard.jobs import Job
from app.gui.wizard.state import WizardState
from app.gui.wizard.widgets import MessageBar


class WizardPage(QtWidgets.QWizardPage):
    """A page that reads and fills `state`; errors appear in `message` as a sentence."""

    def __init__(self, state: WizardState, title: str, subtitle: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.message = MessageBar()
        self.job = Job(self)
        self.job.running_changed.connect(lambda _: self.completeChanged.emit())
        self.job.failed.connect(self.show_error)
        self.last_error = ""

    def arrange(self, side: QtWidgets.QLayout, side_width: int, *main: tuple[QtWidgets.QWidget, int]) -> None:
        """The pages' common layout: the message bar over the main widgets (each with its
        stretch) beside a side panel of at most `side_width` px."""
        panel = QtWidgets.QWidget()
        panel.setLayout(side)
        panel.setMaximumWidth(side_width)
        body = QtWidgets.QHBoxLayout()
        for widget, stretch in main:
            body.addWidget(widget, stretch)
        body.addWidget(panel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(body, 1)

    def add_job_controls(self, side: QtWidgets.QVBoxLayout, options: QtWidgets.QWidget) -> None:
        """A job page's progress bar, its options and the Run / Stop row, in that order."""
        side.addWidget(self.progress)
        side.addWidget(options)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        side.addLayout(buttons)

    def show_error(self, text: str) -> None:
        self.last_error = text
        self.message.show_error(text)

    def show_note(self, text: str) -> None:
        self.message.show_note(text) if text else self.message.clear_message()

    def clear_error(self) -> None:
        self.last_error = ""
        self.message.clear_message()

    def cleanupPage(self) -> None:
        # Going back keeps what this page found (QWizard's default would reset its fields).
        self.job.cancel()
