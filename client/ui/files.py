"""
What the windows show of files (PROTOCOL.md section 14): the images and
saves the timeline's bubbles paint (L{FileStore}), a window with an image
at its full size (L{ImageViewer}), and the file dialogs, asked without a
nested event loop.

The uploads themselves are the session's (L{client.session.ChatClient.
send_file}): their progress is in the state, on the pending message.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from PyQt5.QtCore import QBuffer, QByteArray, QIODevice, QObject, QSize, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QGuiApplication, QImage, QImageReader, QKeySequence, QMovie, QPixmap
from PyQt5.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QShortcut,
    QVBoxLayout,
    QWidget,
)
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from client import texts
from client.protocol import Disconnected
from client.state import ONLINE, File, Key, Message, Payload
from client.transfers import (
    Download,
    FileCache,
    Request,
    TransferCancelled,
    TransferFailed,
    TransferOffline,
)
from client.ui.widgets import button

#: The largest an image is kept in memory, for the timeline (twice what
#: a bubble shows, for high-density screens).
THUMBNAIL: Final = QSize(960, 720)
#: Images kept in memory at most; those beyond are read from the disk
#: cache again when they scroll back into view.
IMAGES_KEPT: Final = 64


def _no_connection(kind: str, **fields: object) -> Deferred[Payload]:
    return fail(Disconnected())


class FileStore(QObject):
    """
    The files the timeline shows: the images of image messages, fetched
    into the L{FileCache} the first time one is painted (so only those
    scrolled into view are downloaded, each content once) and kept in
    memory, scaled down; and the files being saved, with their progress.

    @ivar cache: the files on disk, by digest.
    """

    log = Logger()

    #: Something shown changed (a progress, an image failing): repaint.
    changed = pyqtSignal()
    #: An image arrived, whose size the rows did not know: lay them out.
    resized = pyqtSignal()
    #: A save ended or could not start: a sentence for people.
    notice = pyqtSignal(str)

    def __init__(
        self,
        request: Request | None = None,
        directory: str | None = None,
        clock: IReactorTime | None = None,
        parent: QObject | None = None,
    ) -> None:
        """
        @param request: sends a request on the session's connection
            (L{client.session.ChatClient.request}).
        @param directory: where downloaded files are kept; by default the
            user's cache (L{client.transfers.default_cache_directory}).
        @param clock: for the pause after C{rate_limited}.
        """
        super().__init__(parent)
        self._request: Request = request or _no_connection
        self._clock = clock
        self.cache = FileCache(self._request, directory, clock)
        # Each image's size (upright), once read: the rows' height.
        self._sizes: dict[str, QSize] = {}
        self._images: OrderedDict[str, QImage] = OrderedDict()
        # Each image as last painted: the size and pixel ratio, and pixmap.
        self._scaled: dict[str, tuple[tuple[QSize, float], QPixmap]] = {}
        # Why an image cannot be shown, and whether a reconnect may help.
        self._errors: dict[str, tuple[str, bool]] = {}
        self._loading: dict[str, tuple[int, int]] = {}
        self._wanted: dict[str, File] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._fetch_wanted)
        self._saves: dict[str, Download] = {}
        self._saved: dict[str, tuple[int, int]] = {}

    # Images.

    def image(self, file: File) -> QImage | None:
        """
        @return: C{file}'s image, scaled down to at most L{THUMBNAIL}, if
            it is in memory.
        """
        image = self._images.get(file.sha256)
        if image is not None:
            self._images.move_to_end(file.sha256)
        return image

    def pixmap(self, file: File, size: QSize, ratio: float = 1.0) -> QPixmap | None:
        """
        @return: C{file}'s image as it is painted at C{size} (on a screen of
            C{ratio} device pixels to a pixel), scaled once and kept while
            that is the size asked for; L{None} until it is in memory.
        """
        image = self.image(file)
        if image is None:
            return None
        scaled = self._scaled.get(file.sha256)
        if scaled is not None and scaled[0] == (size, ratio):
            return scaled[1]
        pixmap = QPixmap.fromImage(
            image.scaled(
                size * ratio,
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
        pixmap.setDevicePixelRatio(ratio)
        self._scaled[file.sha256] = ((size, ratio), pixmap)
        return pixmap

    def image_size(self, file: File) -> QSize | None:
        """
        @return: the size of C{file}'s image, upright, once it was read.
        """
        return self._sizes.get(file.sha256)

    def image_error(self, file: File) -> str | None:
        """
        @return: why C{file}'s image cannot be shown, or L{None}.
        """
        error = self._errors.get(file.sha256)
        return error[0] if error is not None else None

    def loading(self, file: File) -> tuple[int, int] | None:
        """
        @return: how far C{file}'s download into the cache got, as
            C{(done, total)} bytes, while it runs.
        """
        return self._loading.get(file.sha256)

    def want(self, file: File) -> None:
        """
        C{file}'s image is on screen: have it in memory soon, from the disk
        cache or else from the server, unless it is there, on its way, or
        failed.  Called while painting: the work is done once the painting
        is over.
        """
        digest = file.sha256
        if digest in self._images or digest in self._errors or digest in self._wanted:
            return
        if self.cache.fetching(file):
            return
        self._wanted[digest] = file
        if not self._timer.isActive():
            self._timer.start()

    def retry(self, file: File) -> None:
        """
        Fetch C{file}'s image again, after it failed.
        """
        if self._errors.pop(file.sha256, None) is not None:
            self.want(file)
            self.changed.emit()

    def full_path(self, file: File) -> str | None:
        """
        @return: the path of C{file}'s content in the disk cache, if held.
        """
        return self.cache.cached(file)

    def _fetch_wanted(self) -> None:
        wanted, self._wanted = self._wanted, {}
        for file in wanted.values():
            d = self.cache.fetch(file, self._progress_of(file))
            d.addCallbacks(
                self._arrived, self._not_arrived, callbackArgs=(file,), errbackArgs=(file,)
            )
            d.addErrback(self._bug)

    def _progress_of(self, file: File) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            before = self._loading.get(file.sha256)
            self._loading[file.sha256] = (done, total)
            if before is None or texts.percent(*before) != texts.percent(done, total):
                self.changed.emit()

        return progress

    def _arrived(self, path: str, file: File) -> None:
        self._loading.pop(file.sha256, None)
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        natural = reader.size()
        if natural.isValid() and (
            natural.width() > THUMBNAIL.width() or natural.height() > THUMBNAIL.height()
        ):
            reader.setScaledSize(natural.scaled(THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        if image.isNull():
            self._errors[file.sha256] = (texts.IMAGE_UNREADABLE, False)
            self.changed.emit()
            return
        if not natural.isValid():
            natural = image.size()
        elif (image.width() > image.height()) != (natural.width() > natural.height()):
            natural.transpose()  # turned upright by its EXIF orientation
        self._images[file.sha256] = image
        self._scaled.pop(file.sha256, None)
        while len(self._images) > IMAGES_KEPT:
            evicted, _ = self._images.popitem(last=False)
            self._scaled.pop(evicted, None)
        if self._sizes.get(file.sha256) != natural:
            self._sizes[file.sha256] = natural
            self.resized.emit()
        else:
            self.changed.emit()

    def _not_arrived(self, failure: Failure, file: File) -> None:
        failure.trap(TransferFailed, TransferCancelled)
        self._loading.pop(file.sha256, None)
        offline = bool(failure.check(TransferOffline, TransferCancelled))
        self._errors[file.sha256] = (texts.image_unavailable(failure.getErrorMessage()), offline)
        self.changed.emit()

    def connection_changed(self, status: str) -> None:
        """
        The connection's status changed: once online again, the images
        that could not be fetched while offline are fetched when shown.
        """
        if status != ONLINE:
            return
        offline = [digest for digest, (_, retry) in self._errors.items() if retry]
        for digest in offline:
            del self._errors[digest]
        if offline:
            self.changed.emit()

    # Saving.

    def saving(self, file_id: str) -> tuple[int, int] | None:
        """
        @return: how far saving the file C{file_id} got, as C{(done,
            total)} bytes, while it runs.
        """
        return self._saved.get(file_id) if file_id in self._saves else None

    def save(self, file: File, path: str) -> None:
        """
        Fetch C{file} into C{path}: its bubble shows the progress, and a
        notice says when it is there (its SHA-256 checked) or why not (the
        partial file is removed).
        """
        if file.id in self._saves:
            self.notice.emit(texts.SAVE_RUNNING)
            return
        self._saved[file.id] = (0, file.size)
        download = Download(self._request, file, path, self._save_progress(file), self._clock)
        self._saves[file.id] = download
        self.changed.emit()
        d = download.start()
        d.addCallbacks(
            self._save_done,
            self._save_failed,
            callbackArgs=(file,),
            errbackArgs=(file, download),
        )
        d.addErrback(self._bug)

    def cancel_save(self, file_id: str) -> None:
        """
        Stop saving the file C{file_id}; the partial file is removed.
        """
        download = self._saves.get(file_id)
        if download is not None:
            download.cancel()

    def _save_progress(self, file: File) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            before = self._saved.get(file.id, (0, total))
            self._saved[file.id] = (done, total)
            if texts.percent(*before) != texts.percent(done, total):
                self.changed.emit()

        return progress

    def _save_done(self, path: str, file: File) -> None:
        self._saves.pop(file.id, None)
        self._saved.pop(file.id, None)
        self.changed.emit()
        self.notice.emit(texts.file_saved(file.name, path))

    def _save_failed(self, failure: Failure, file: File, download: Download) -> None:
        failure.trap(TransferFailed, TransferCancelled)
        if self._saves.get(file.id) is download:
            del self._saves[file.id]
            self._saved.pop(file.id, None)
        self.changed.emit()
        if failure.check(TransferFailed):
            self.notice.emit(failure.getErrorMessage())

    def stop(self) -> None:
        """
        The session ended: stop every transfer, and forget why images
        failed (the next session may show them).
        """
        for download in list(self._saves.values()):
            download.cancel()
        self.cache.cancel_all()
        self._wanted.clear()
        self._errors.clear()
        self._loading.clear()
        self.changed.emit()

    def _bug(self, failure: Failure) -> None:
        self.log.failure("A file transfer failed", failure)


@dataclass(frozen=True)
class FileToSend:
    """
    A file the user wants sent: a local file, or an image pasted or
    dropped (its PNG bytes).

    @ivar caption: the text that goes with it (may be empty).
    @ivar reply_to: the message it answers, if any.
    """

    key: Key
    path: str | None = None
    data: bytes | None = None
    name: str | None = None
    caption: str = ""
    reply_to: Message | None = None


def pasted_name(now: datetime | None = None) -> str:
    """
    @return: the name a pasted image is sent under:
        C{"Pasted image 2026-12-03 14.05.09.png"}.
    """
    return f"Pasted image {(now or datetime.now()):%Y-%m-%d %H.%M.%S}.png"


def png_bytes(image: QImage) -> bytes:
    """
    @return: C{image} encoded as PNG (a pasted or dropped image).
    """
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data)


class ImageViewer(QWidget):
    """
    A window with one image at its full size (scaled down to fit the
    screen), animated when it is a GIF, with Save… and Close.
    """

    #: The user wants the file saved.
    save_wanted = pyqtSignal()

    def __init__(self, path: str, file: File, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"{file.name} · {texts.human_size(file.size)}")
        self.file = file
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setStyleSheet("background: #1E1F22;")
        scroll = QScrollArea()
        scroll.setWidget(self.picture)
        scroll.setWidgetResizable(True)
        layout.addWidget(scroll, 1)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(12, 0, 12, 0)
        buttons.addStretch(1)
        self.save_button = button("Save…", None, "Save this image")
        self.save_button.clicked.connect(self.save_wanted)
        self.close_button = button("Close", "Primary", "Close (Esc)")
        self.close_button.clicked.connect(self._close)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self._close)
        self.movie: QMovie | None = None
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        room = QSize(1200, 800)
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            room = screen.availableGeometry().size() * 0.85
        if file.mime == "image/gif" and reader.supportsAnimation() and reader.imageCount() > 1:
            self.movie = QMovie(path, parent=self)
            self.picture.setMovie(self.movie)
            self.movie.start()
            size = self.movie.frameRect().size()
        else:
            image = reader.read()
            if image.isNull():
                self.picture.setText(texts.IMAGE_UNREADABLE)
                self.picture.setStyleSheet("color: #FFFFFF; background: #1E1F22;")
                size = QSize(420, 240)
            else:
                if image.width() > room.width() or image.height() > room.height():
                    image = image.scaled(
                        room,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                self.picture.setPixmap(QPixmap.fromImage(image))
                size = image.size()
        self.resize(max(320, size.width() + 4), max(200, size.height() + 52))

    def _close(self) -> None:
        self.close()


def ask_file(
    parent: QWidget, title: str, save_as: str | None, chosen: Callable[[str], None]
) -> QFileDialog:
    """
    Ask for a file to open (or, with C{save_as}, where to save one) with a
    window-modal dialog that returns at once; C{chosen} is called with the
    path when the user picks one.

    @param save_as: the path proposed for a file to save.
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
