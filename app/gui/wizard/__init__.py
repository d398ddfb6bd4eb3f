"""The calibration wizard (Calibrate cameras… in the main window's File menu)."""

from app.gui.wizard.wizard import CalibrationWizard, open_wizard

__all__ = ["CalibrationWizard", "open_wizard"]
