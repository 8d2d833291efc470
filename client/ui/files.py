"""
What the windows show of file transfers (PROTOCOL.md section 14): a row
with a progress bar and a Cancel button for each transfer running, above
the composer, and the file dialogs, asked without a nested event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from client.ui.widgets import button


class TransferRow(QWidget):
    """
    One transfer running: what it is, how far it got, and a Cancel button.
    """

    def __init__(self, title: str, cancel: Callable[[], None], parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 4, 14, 4)
        layout.setSpacing(8)
        self.label = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.cancel_button = button("Cancel", "Flat", "Stop this transfer")
        self.cancel_button.clicked.connect(cancel)
        layout.addWidget(self.label)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)

    def set_progress(self, done: int, total: int) -> None:
        """
        Show that C{done} of C{total} bytes went.
        """
        self.bar.setValue(int(1000 * done / total) if total > 0 else 0)


class TransferList(QWidget):
    """
    The transfers running, one L{TransferRow} each; hidden when there are
    none.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 4, 0, 4)
        self._layout.setSpacing(0)
        self.rows: list[TransferRow] = []
        self.hide()

    def add(self, title: str, cancel: Callable[[], None]) -> TransferRow:
        """
        Show a new transfer.

        @param cancel: called when its Cancel button is clicked.
        @return: its row, to report progress to and L{remove} at the end.
        """
        row = TransferRow(title, cancel, self)
        self.rows.append(row)
        self._layout.addWidget(row)
        self.show()
        return row

    def remove(self, row: TransferRow) -> None:
        """
        The transfer of C{row} ended: take its row away.
        """
        if row in self.rows:
            self.rows.remove(row)
            self._layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.setVisible(bool(self.rows))


def ask_file(
    parent: QWidget, title: str, save_as: str | None, chosen: Callable[[str], None]
) -> QFileDialog:
    """
    Ask for a file to open (or, with C{save_as}, where to save one) with a
    window-modal dialog that returns at once; C{chosen} is called with the
    path when the user picks one.

    @param save_as: the name proposed for a file to save.
    @return: the dialog, shown.
    """
    dialog = QFileDialog(parent, title)
    if save_as is not None:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.selectFile(save_as)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.fileSelected.connect(chosen)
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog
