"""
The client's side of files (PROTOCOL.md section 14): uploads, downloads and
the file cache of L{client.transfers}, against the scripted server.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from PyQt5.QtCore import QPointF
from PyQt5.QtWidgets import QStyleOptionViewItem
from twisted.trial.unittest import SynchronousTestCase

from client import texts
from client.state import PRIVATE, ROOM, File, Message
from client.transfers import (
    CHUNK_SIZE,
    WINDOW,
    Download,
    FileCache,
    TransferCancelled,
    TransferFailed,
    Upload,
)
from tests.qt_support import NCR, FakeConnection, Session, message
from tests.test_client_ui import AppTestCase, click

Payload = dict[str, Any]

#: Eleven chunks and a bit: more than one window's worth.
CONTENT = bytes(range(256)) * (CHUNK_SIZE * 11 // 256) + b"tail"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def stored(content: bytes = CONTENT, name: str = "notes.bin", mime: str = "") -> Payload:
    """
    @return: the File object of the wire for C{content}.
    """
    return {
        "id": "f" + hashlib.sha256(content).hexdigest()[:8],
        "name": name,
        "size": len(content),
        "mime": mime or "application/octet-stream",
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def file_message(message_id: int, file: Payload, text: str = "") -> Payload:
    """
    @return: a file Message of the wire that ncr sent to lzy.
    """
    return message(message_id, NCR, PRIVATE, 2, text, kind="file", file=file)


class DownloadServer:
    """
    Answers download requests from the scripted server's end.
    """

    def __init__(self, server: FakeConnection) -> None:
        self.server = server

    def serve(self, content: bytes = CONTENT) -> list[int]:
        """
        Answer every download request with C{content}, checking the window.

        @return: the offsets asked for, in order.
        """
        offsets = []
        waiting = [r for r in self.server.sent() if r["type"] == "download"]
        while waiting:
            assert len(waiting) <= WINDOW
            request = waiting.pop(0)
            offset, length = request["offset"], request["length"]
            offsets.append(offset)
            data = content[offset : offset + length]
            self.server.reply(
                request,
                "file_chunk",
                file_id=request["file_id"],
                offset=offset,
                data=base64.b64encode(data).decode(),
                eof=offset + length >= len(content),
            )
            waiting.extend(r for r in self.server.sent() if r["type"] == "download")
        return offsets


class TransferTestCase(SynchronousTestCase):
    """
    A logged-in session, and a temporary directory.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.server: FakeConnection = self.session.server
        self.server.sent()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.progress: list[tuple[int, int]] = []

    def local(self, content: bytes = CONTENT, name: str = "notes.bin") -> str:
        """
        @return: the path of a new local file holding C{content}.
        """
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def record(self, done: int, total: int) -> None:
        self.progress.append((done, total))

    def serve(self, content: bytes = CONTENT) -> list[int]:
        """
        Answer every download request with C{content}.

        @return: the offsets asked for, in order.
        """
        return DownloadServer(self.server).serve(content)


class UploadTests(TransferTestCase):
    """
    L{Upload} sending a local file in chunks.
    """

    def upload(self, content: bytes = CONTENT, caption: str = "") -> Upload:
        upload = Upload(
            self.session.client.request,
            self.local(content),
            (PRIVATE, 2),
            caption=caption,
            progress=self.record,
            apply_reply=self.session.state.apply_reply,
        )
        upload.start()
        return upload

    def ready(self) -> None:
        start = self.server.take("upload_start")
        self.assertEqual(
            (start["name"], start["size"], start["mime"]),
            ("notes.bin", len(CONTENT), "application/octet-stream"),
        )
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)

    def chunks(self) -> list[Payload]:
        """
        @return: the chunks sent since last asked; other requests are kept
            in C{self.rest}.
        """
        sent = self.server.sent()
        self.rest = getattr(self, "rest", []) + [r for r in sent if r["type"] != "upload_chunk"]
        return [r for r in sent if r["type"] == "upload_chunk"]

    def test_multi_chunk_upload(self) -> None:
        """
        The file goes out in 32 KiB chunks at growing offsets, never more
        than the window in flight; then upload_finish carries the SHA-256 of
        the whole file and send_message its file_id, and the message shows.
        """
        upload = self.upload(caption="the notes")
        self.ready()
        received = b""
        offsets = []
        in_flight = self.chunks()
        self.assertEqual(len(in_flight), WINDOW)
        while in_flight:
            chunk = in_flight.pop(0)
            self.assertEqual(chunk["upload_id"], "u1")
            self.assertEqual(chunk["offset"], len(received))
            offsets.append(chunk["offset"])
            received += base64.b64decode(chunk["data"])
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=len(received))
            in_flight.extend(self.chunks())
            self.assertLessEqual(len(in_flight), WINDOW)
        self.assertEqual(received, CONTENT)
        self.assertEqual(offsets, list(range(0, len(CONTENT), CHUNK_SIZE)))
        self.assertEqual(self.progress[-1], (len(CONTENT), len(CONTENT)))
        self.assertEqual(len(self.progress), len(offsets))
        [finish] = self.rest
        self.assertEqual(finish["type"], "upload_finish")
        self.assertEqual((finish["upload_id"], finish["sha256"]), ("u1", DIGEST))
        self.server.reply(finish, "file_stored", file=stored())
        send = self.server.take("send_message")
        self.assertEqual(
            (send["target_type"], send["target_id"], send["file_id"], send["message"]),
            (PRIVATE, 2, stored()["id"], "the notes"),
        )
        self.server.reply(send, "on_new_message", message=file_message(9, stored(), "the notes"))
        sent = self.successResultOf(upload.done)
        self.assertEqual(sent.file, File.from_payload(stored()))
        held = self.session.state.conversation((PRIVATE, 2)).messages
        self.assertEqual([(m.id, m.kind, m.file) for m in held], [(9, "file", sent.file)])
        self.assertFalse(upload.running)

    def test_no_caption(self) -> None:
        """
        Without a caption, send_message carries no message field.
        """
        self.upload(b"tiny")
        start = self.server.take("upload_start")
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)
        chunk = self.server.take("upload_chunk")
        self.assertEqual(base64.b64decode(chunk["data"]), b"tiny")
        self.server.reply(chunk, "upload_progress", upload_id="u1", received=4)
        finish = self.server.take("upload_finish")
        self.assertEqual(finish["sha256"], hashlib.sha256(b"tiny").hexdigest())
        self.server.reply(finish, "file_stored", file=stored(b"tiny"))
        send = self.server.take("send_message")
        self.assertNotIn("message", send)

    def test_cancel(self) -> None:
        """
        Once cancelled, no chunk, upload_finish or send_message goes out,
        even as the chunks in flight are answered.
        """
        upload = self.upload()
        self.ready()
        in_flight = self.chunks()
        upload.cancel()
        self.failureResultOf(upload.done, TransferCancelled)
        for chunk in in_flight:
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=0)
        self.assertEqual(self.server.sent(), [])
        self.assertFalse(upload.running)

    def test_refused_start(self) -> None:
        """
        A refused upload_start fails the upload with the client's sentence.
        """
        for code in ("file_too_large", "quota_exceeded", "not_allowed", "rate_limited"):
            upload = self.upload()
            self.server.error(self.server.take("upload_start"), code)
            failure = self.failureResultOf(upload.done, TransferFailed)
            self.assertEqual(failure.value.message, texts.FILE_ERRORS[code])

    def test_refused_chunk_stops(self) -> None:
        """
        A refused chunk stops the upload: nothing more goes out.
        """
        upload = self.upload()
        self.ready()
        first, *others = self.chunks()
        self.server.error(first, "no_such_file")
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_ERRORS["no_such_file"])
        for chunk in others:
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=0)
        self.assertEqual(self.server.sent(), [])

    def test_incomplete(self) -> None:
        """
        upload_incomplete at the end is said in the client's words, and no
        message is sent.
        """
        upload = self.upload(b"tiny")
        self.server.reply(
            self.server.take("upload_start"), "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE
        )
        self.server.reply(
            self.server.take("upload_chunk"), "upload_progress", upload_id="u1", received=4
        )
        self.server.error(self.server.take("upload_finish"), "upload_incomplete")
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_ERRORS["upload_incomplete"])
        self.assertEqual(self.server.sent(), [])

    def test_connection_lost(self) -> None:
        """
        A connection lost mid-upload fails it with the offline sentence.
        """
        upload = self.upload()
        self.ready()
        self.server.drop()
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_OFFLINE)

    def test_unreadable(self) -> None:
        """
        A local file that cannot be opened fails at once; nothing is sent.
        """
        upload = Upload(
            self.session.client.request, os.path.join(self.directory, "gone"), (ROOM, 1)
        )
        failure = self.failureResultOf(upload.start(), TransferFailed)
        self.assertIn("gone", failure.value.message)
        self.assertEqual(self.server.sent(), [])

    def test_mime_guessed(self) -> None:
        """
        The type sent is guessed from the file's name.
        """
        path = self.local(b"\x89PNG", "cat.png")
        Upload(self.session.client.request, path, (ROOM, 1)).start()
        self.assertEqual(self.server.take("upload_start")["mime"], "image/png")


class DownloadTests(TransferTestCase):
    """
    L{Download} fetching a stored file into a path.
    """

    def test_download(self) -> None:
        """
        The file comes in windowed chunks, is written to a .part file, and
        renamed into place once its SHA-256 matches.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(
            self.session.client.request, File.from_payload(stored()), path, self.record
        )
        download.start()
        self.assertTrue(os.path.exists(path + ".part"))
        offsets = self.serve()
        self.assertEqual(offsets, list(range(0, len(CONTENT), CHUNK_SIZE)))
        self.assertEqual(self.successResultOf(download.done), path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertFalse(os.path.exists(path + ".part"))
        self.assertEqual(self.progress[-1], (len(CONTENT), len(CONTENT)))

    def test_mismatch(self) -> None:
        """
        Content whose SHA-256 is not the file's fails the download, and
        neither the partial nor the final file is left.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(self.session.client.request, File.from_payload(stored()), path)
        download.start()
        self.serve(b"x" * len(CONTENT))
        failure = self.failureResultOf(download.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_CORRUPT)
        self.assertEqual(os.listdir(self.directory), [])

    def test_refused(self) -> None:
        """
        no_such_file fails the download with the client's sentence and
        removes the partial file.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(self.session.client.request, File.from_payload(stored()), path)
        download.start()
        self.server.error(self.server.take("download"), "no_such_file")
        failure = self.failureResultOf(download.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_ERRORS["no_such_file"])
        self.assertEqual(os.listdir(self.directory), [])

    def test_cancel(self) -> None:
        """
        A cancelled download asks for nothing more and removes its partial
        file.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(self.session.client.request, File.from_payload(stored()), path)
        download.start()
        waiting = self.server.sent()
        download.cancel()
        self.failureResultOf(download.done, TransferCancelled)
        for request in waiting:
            self.server.reply(request, "file_chunk", offset=request["offset"], data="", eof=False)
        self.assertEqual(self.server.sent(), [])
        self.assertEqual(os.listdir(self.directory), [])


class CacheTests(TransferTestCase):
    """
    L{FileCache} keeping downloads by digest.
    """

    def test_cache(self) -> None:
        """
        A file is fetched into the cache once: a second fetch of the same
        content, even under another file id, sends no download request; two
        fetches at once share one download.
        """
        cache = FileCache(self.session.client.request, os.path.join(self.directory, "cache"))
        file = File.from_payload(stored(mime="image/png"))
        self.assertIsNone(cache.cached(file))
        first, second = cache.fetch(file), cache.fetch(file)
        self.assertTrue(cache.fetching(file))
        self.serve()
        path = self.successResultOf(first)
        self.assertEqual(self.successResultOf(second), path)
        self.assertEqual(path, os.path.join(self.directory, "cache", DIGEST))
        again = File.from_payload({**stored(), "id": "another"})
        self.assertEqual(self.successResultOf(cache.fetch(again)), path)
        self.assertEqual(self.server.sent(), [])
        self.assertEqual(cache.cached(again), path)

    def test_failed_fetch_retried(self) -> None:
        """
        A fetch that failed leaves nothing in the cache, so the next one
        downloads again.
        """
        cache = FileCache(self.session.client.request, os.path.join(self.directory, "cache"))
        file = File.from_payload(stored())
        d = cache.fetch(file)
        self.server.error(self.server.take("download"), "no_such_file")
        self.failureResultOf(d, TransferFailed)
        self.assertIsNone(cache.cached(file))
        cache.fetch(file)
        self.server.take("download")

    def test_bad_digest(self) -> None:
        """
        A digest that is not 64 hex digits is never used as a file name.
        """
        cache = FileCache(self.session.client.request, os.path.join(self.directory, "cache"))
        file = File.from_payload({**stored(), "sha256": "../../etc/passwd"})
        self.failureResultOf(cache.fetch(file), TransferFailed)
        self.assertEqual(self.server.sent(), [])


class FileMessageTests(SynchronousTestCase):
    """
    File messages in L{client.state}, and the sizes people read.
    """

    def test_message_carries_file(self) -> None:
        """
        A file Message keeps its File; a deletion drops it.
        """
        parsed = Message.from_payload(file_message(4, stored(name="cat.png", mime="image/png")))
        assert parsed.file is not None
        self.assertEqual(
            (parsed.kind, parsed.file.name, parsed.file.image), ("file", "cat.png", True)
        )
        self.assertIsNone(parsed.tombstone().file)
        self.assertIsNone(Message.from_payload(message(5, NCR, PRIVATE, 2)).file)

    def test_human_size(self) -> None:
        """
        Sizes read as bytes, KiB, MiB.
        """
        self.assertEqual(
            [texts.human_size(n) for n in (5, 1536, 25 * 1024 * 1024)],
            ["5 B", "1.5 KiB", "25.0 MiB"],
        )


class WindowTests(AppTestCase):
    """
    The windows: the attach button, the transfer rows, file messages and
    saving them.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.chosen: list[str] = []
        self.patch(self.main, "ask_file", self._ask_file)

    def _ask_file(self, title: str, save_as: str | None, chosen: Any) -> None:
        # The user picks the next path of self.chosen at once.
        chosen(self.chosen.pop(0))

    def local(self, content: bytes) -> str:
        path = os.path.join(self.directory, "notes.bin")
        with open(path, "wb") as f:
            f.write(content)
        return path

    def test_attach_shows_progress_and_cancels(self) -> None:
        """
        The attach button uploads the chosen file to the conversation shown,
        with a progress bar; Cancel stops it and takes the bar away.
        """
        self.open((PRIVATE, 2), [])
        self.chosen.append(self.local(CONTENT))
        click(self.main.attach_button)
        start = self.server.take("upload_start")
        self.assertEqual((start["name"], start["size"]), ("notes.bin", len(CONTENT)))
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)
        chunk = self.server.take("upload_chunk")
        self.server.reply(chunk, "upload_progress", upload_id="u1", received=CHUNK_SIZE)
        [row] = self.main.transfers.rows
        self.assertFalse(self.main.transfers.isHidden())
        self.assertEqual(row.bar.value(), 1000 * CHUNK_SIZE // len(CONTENT))
        self.server.sent()
        click(row.cancel_button)
        self.assertEqual(self.main.transfers.rows, [])
        self.assertTrue(self.main.transfers.isHidden())
        self.assertEqual([r["type"] for r in self.server.sent()], [])

    def test_upload_refused(self) -> None:
        """
        A refused upload says why in the notice bar, and its bar goes.
        """
        self.open((PRIVATE, 2), [])
        self.chosen.append(self.local(b"tiny"))
        click(self.main.attach_button)
        self.server.error(self.server.take("upload_start"), "quota_exceeded")
        self.assertEqual(self.main.notice_bar.text(), texts.FILE_ERRORS["quota_exceeded"])
        self.assertEqual(self.main.transfers.rows, [])

    def file_row(self, content: bytes = CONTENT) -> tuple[Any, Any]:
        """
        @return: the delegate and index of a file message shown.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(content), "see this")])
        view = self.main.history_view
        return view.itemDelegate(), view.model().index(0, 0)

    def layout(self, delegate: Any, index: Any) -> Any:
        view = self.main.history_view
        option = QStyleOptionViewItem()
        option.initFrom(view)
        option.rect = view.visualRect(index)
        return option, delegate._layout(option, index)

    def test_file_message_rendered(self) -> None:
        """
        A file message shows its file's name and size above the caption,
        and a click on them asks where to save it.
        """
        delegate, index = self.file_row()
        option, layout = self.layout(delegate, index)
        self.assertEqual(
            layout.document.toPlainText(),
            f"{texts.file_label('notes.bin', len(CONTENT))}\nsee this",
        )
        point = layout.text_origin + QPointF(2, 2)
        self.assertEqual(delegate.hit(option, index, point), ("file", stored()["id"]))

    def test_save(self) -> None:
        """
        Save fetches the file into the chosen path with a progress bar,
        which goes once the file is there.
        """
        self.file_row()
        held = self.session.state.conversation((PRIVATE, 2)).messages[0]
        path = os.path.join(self.directory, "saved.bin")
        self.chosen.append(path)
        self.main.save_file(held)
        self.assertEqual(len(self.main.transfers.rows), 1)
        DownloadServer(self.server).serve(CONTENT)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual(self.main.transfers.rows, [])

    def test_save_corrupt(self) -> None:
        """
        A saved file that does not match says so, and leaves nothing.
        """
        self.file_row()
        held = self.session.state.conversation((PRIVATE, 2)).messages[0]
        self.chosen.append(os.path.join(self.directory, "saved.bin"))
        self.main.save_file(held)
        DownloadServer(self.server).serve(b"y" * len(CONTENT))
        self.assertEqual(self.main.notice_bar.text(), texts.FILE_CORRUPT)
        self.assertEqual(os.listdir(self.directory), [])
