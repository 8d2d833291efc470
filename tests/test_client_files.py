"""
The client's side of files (PROTOCOL.md section 14), against the scripted
server: uploads, downloads and the file cache of L{client.transfers}, the
session sending file messages (L{client.session.ChatClient.send_file}),
and the windows: file bubbles with their progress and buttons, inline
images fetched when they come into view, saving, dropping and pasting.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from PyQt5.QtCore import QMimeData, QPoint, QPointF, QSizeF, Qt, QUrl
from PyQt5.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication, QStyleOptionViewItem
from twisted.trial.unittest import SynchronousTestCase

from client import texts
from client.session import MAX_UPLOADS
from client.state import PRIVATE, ROOM, File, Message, PendingChanged, PendingMessage
from client.transfers import (
    CHUNK_SIZE,
    RETRY_PAUSE,
    WINDOW,
    Download,
    FileCache,
    TransferCancelled,
    TransferFailed,
    TransferOffline,
    Upload,
    guess_mime,
    wire_name,
)
from client.ui.delegates import DELETED, MessageDelegate
from client.ui.files import FileStore, ImageViewer
from tests.qt_support import NCR, FakeConnection, Session, message, qapp
from tests.test_client_ui import AppTestCase, click

Payload = dict[str, Any]

#: Eleven chunks and a bit: more than one window's worth.
CONTENT = bytes(range(256)) * (CHUNK_SIZE * 11 // 256) + b"tail"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def stored(
    content: bytes = CONTENT, name: str = "notes.bin", mime: str = "", id: str = ""
) -> Payload:
    """
    @return: the File object of the wire for C{content}.
    """
    return {
        "id": id or "f" + hashlib.sha256(content).hexdigest()[:8],
        "name": name,
        "size": len(content),
        "mime": mime or "application/octet-stream",
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def file_message(
    message_id: int, file: Payload, text: str = "", client_msg_id: str | None = None
) -> Payload:
    """
    @return: a file Message of the wire that ncr sent to lzy.
    """
    return message(
        message_id, NCR, PRIVATE, 2, text, client_msg_id=client_msg_id, kind="file", file=file
    )


#: The requests of file transfers and sends (not typing, mark_read, ...).
TRANSFERS = frozenset({"upload_start", "upload_chunk", "upload_finish", "download", "send_message"})


def transfers(server: FakeConnection) -> list[Payload]:
    """
    @return: the transfer requests among those sent since last asked.
    """
    return [r for r in server.sent() if r["type"] in TRANSFERS]


class DownloadServer:
    """
    Answers download requests from the scripted server's end.
    """

    def __init__(self, server: FakeConnection) -> None:
        self.server = server
        #: The requests that were no download, in order.
        self.others: list[Payload] = []

    def waiting(self) -> list[Payload]:
        sent = self.server.sent()
        self.others += [r for r in sent if r["type"] != "download"]
        return [r for r in sent if r["type"] == "download"]

    def answer(self, request: Payload, content: bytes) -> None:
        offset, length = request["offset"], request["length"]
        data = content[offset : offset + length]
        self.server.reply(
            request,
            "file_chunk",
            file_id=request["file_id"],
            offset=offset,
            data=base64.b64encode(data).decode(),
            eof=offset + length >= len(content),
        )

    def serve(self, content: bytes = CONTENT) -> list[int]:
        """
        Answer every download request with C{content}, checking the window.

        @return: the offsets asked for, in order.
        """
        offsets = []
        waiting = self.waiting()
        while waiting:
            assert len(waiting) <= WINDOW
            request = waiting.pop(0)
            offsets.append(request["offset"])
            self.answer(request, content)
            waiting.extend(self.waiting())
        return offsets


class UploadServer:
    """
    Takes uploads at the scripted server's end.
    """

    def __init__(self, server: FakeConnection) -> None:
        self.server = server
        #: The requests that were no upload_chunk, in order.
        self.others: list[Payload] = []

    def chunks(self) -> list[Payload]:
        """
        @return: the chunks sent since last asked; other requests go to
            L{others}.
        """
        sent = self.server.sent()
        self.others += [r for r in sent if r["type"] != "upload_chunk"]
        return [r for r in sent if r["type"] == "upload_chunk"]

    def ready(self, upload_id: str = "u1") -> Payload:
        """
        Answer the upload_start waiting.

        @return: it.
        """
        start = self.server.take("upload_start")
        self.server.reply(start, "upload_ready", upload_id=upload_id, chunk_size=CHUNK_SIZE)
        return start

    def take_all(
        self, in_flight: list[Payload] | None = None, received: bytes = b""
    ) -> tuple[bytes, list[int]]:
        """
        Acknowledge every chunk, checking the window and the offsets.

        @param in_flight: the chunks taken already, not answered.
        @param received: the bytes acknowledged already.
        @return: the bytes received, and the offsets acknowledged, in order.
        """
        offsets = []
        in_flight = (in_flight or []) + self.chunks()
        while in_flight:
            assert len(in_flight) <= WINDOW, len(in_flight)
            chunk = in_flight.pop(0)
            assert chunk["offset"] == len(received), (chunk["offset"], len(received))
            offsets.append(chunk["offset"])
            received += base64.b64decode(chunk["data"])
            self.server.reply(
                chunk, "upload_progress", upload_id=chunk["upload_id"], received=len(received)
            )
            in_flight.extend(self.chunks())
        return received, offsets

    def finish(self, file: Payload) -> Payload:
        """
        Answer the upload_finish sent with C{file} stored.

        @return: the upload_finish.
        """
        self.others += self.server.sent()
        finish = next(r for r in self.others if r["type"] == "upload_finish")
        self.others.remove(finish)
        self.server.reply(finish, "file_stored", file=file)
        return finish


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
    L{Upload} sending a file's content in chunks.
    """

    def upload(self, content: bytes = CONTENT, clock: bool = False) -> Upload:
        upload = Upload(
            self.session.client.request,
            self.local(content),
            progress=self.record,
            clock=self.session.clock if clock else None,
        )
        upload.start()
        return upload

    def test_multi_chunk_upload(self) -> None:
        """
        The file goes out in 32 KiB chunks at growing offsets, never more
        than the window in flight, with progress at each acknowledgement;
        then upload_finish carries the SHA-256 of the whole file, and the
        upload fires with the stored file.
        """
        upload = self.upload()
        server = UploadServer(self.server)
        start = server.ready()
        self.assertEqual(
            (start["name"], start["size"], start["mime"]),
            ("notes.bin", len(CONTENT), "application/octet-stream"),
        )
        first = server.chunks()
        self.assertEqual(len(first), WINDOW)
        received, offsets = server.take_all(first)
        self.assertEqual(received, CONTENT)
        self.assertEqual(offsets, list(range(0, len(CONTENT), CHUNK_SIZE)))
        self.assertEqual(len(self.progress), len(offsets))
        self.assertEqual(self.progress[-1], (len(CONTENT), len(CONTENT)))
        self.assertEqual(upload.sent, len(CONTENT))
        finish = server.finish(stored())
        self.assertEqual((finish["upload_id"], finish["sha256"]), ("u1", DIGEST))
        self.assertEqual(self.successResultOf(upload.done), File.from_payload(stored()))
        self.assertFalse(upload.running)
        self.assertEqual(self.server.sent(), [])

    def test_from_memory(self) -> None:
        """
        Content held in memory (a pasted image) is sent the same way, under
        the name given, its type guessed from it.
        """
        data = b"\x89PNG" + bytes(CHUNK_SIZE)
        upload = Upload(self.session.client.request, data=data, name="Pasted image.png")
        upload.start()
        server = UploadServer(self.server)
        start = server.ready()
        self.assertEqual(
            (start["name"], start["size"], start["mime"]),
            ("Pasted image.png", len(data), "image/png"),
        )
        received, _ = server.take_all()
        self.assertEqual(received, data)
        finish = server.finish(stored(data, "Pasted image.png", "image/png"))
        self.assertEqual(finish["sha256"], hashlib.sha256(data).hexdigest())
        self.successResultOf(upload.done)

    def test_cancel(self) -> None:
        """
        Once cancelled, no chunk nor upload_finish goes out, even as the
        chunks in flight are answered.
        """
        upload = self.upload()
        UploadServer(self.server).ready()
        in_flight = self.server.sent()
        upload.cancel()
        self.failureResultOf(upload.done, TransferCancelled)
        self.assert_abandoned(in_flight)
        self.assertFalse(upload.running)

    def assert_abandoned(self, in_flight: list[Payload]) -> None:
        """
        Check that the only request after a cancel is the upload_finish
        that makes the server forget the upload, and that its refusal is
        taken quietly.
        """
        for chunk in in_flight:
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=0)
        [finish] = self.server.sent()
        self.assertEqual(
            (finish["type"], finish["upload_id"], finish["sha256"]),
            ("upload_finish", "u1", "0" * 64),
        )
        self.server.error(finish, "upload_incomplete")
        self.assertEqual(self.server.sent(), [])

    def test_cancel_before_ready(self) -> None:
        """
        Cancelled before upload_ready came, the upload is forgotten by the
        server once it comes; no chunk goes out.
        """
        upload = self.upload()
        start = self.server.take("upload_start")
        upload.cancel()
        self.failureResultOf(upload.done, TransferCancelled)
        self.assertEqual(self.server.sent(), [])
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)
        self.assert_abandoned([])

    def test_refused_start(self) -> None:
        """
        A refused upload_start fails the upload with the client's sentence,
        before any chunk.
        """
        for code in ("file_too_large", "quota_exceeded", "not_allowed", "rate_limited"):
            upload = self.upload()
            self.server.error(self.server.take("upload_start"), code)
            failure = self.failureResultOf(upload.done, TransferFailed)
            self.assertEqual(failure.value.message, texts.FILE_ERRORS[code])
            self.assertEqual(self.server.sent(), [])

    def test_refused_chunk_stops(self) -> None:
        """
        A refused chunk stops the upload: nothing more goes out.
        """
        upload = self.upload()
        UploadServer(self.server).ready()
        first, *others = self.server.sent()
        self.server.error(first, "no_such_file")
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_ERRORS["no_such_file"])
        for chunk in others:
            self.server.error(chunk, "invalid_field")
        self.assertEqual(self.server.sent(), [])

    def test_broken_reply(self) -> None:
        """
        A reply missing its fields stops the upload with a sentence (and
        the bug is logged), rather than leaving it hanging.
        """
        upload = self.upload()
        self.server.reply(self.server.take("upload_start"), "upload_ready")
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_BROKEN_REPLY)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_refused_chunk_abandoned(self) -> None:
        """
        A chunk refused for another reason stops the upload too, and the
        server is told to forget it (it would stay open otherwise).
        """
        upload = self.upload()
        UploadServer(self.server).ready()
        first, *others = self.server.sent()
        self.server.error(first, "invalid_field")
        self.failureResultOf(upload.done, TransferFailed)
        for chunk in others:
            self.server.error(chunk, "invalid_field")
        [finish] = self.server.sent()
        self.assertEqual((finish["type"], finish["sha256"]), ("upload_finish", "0" * 64))

    def test_rate_limited_goes_on(self) -> None:
        """
        After rate_limited, the chunks in flight behind it are refused
        too; after a pause the upload goes on from the bytes the server
        has, and the digest is still that of the file.
        """
        upload = self.upload(clock=True)
        server = UploadServer(self.server)
        server.ready()
        in_flight = self.server.sent()
        received = b""
        for chunk in in_flight[:3]:
            received += base64.b64decode(chunk["data"])
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=len(received))
        more = self.server.sent()
        self.assertEqual(len(more), 3)  # the window stays full
        self.server.error(in_flight[3], "rate_limited")
        for chunk in in_flight[4:] + more:
            self.server.error(chunk, "invalid_field")
        self.assertEqual(self.server.sent(), [])
        self.session.clock.advance(RETRY_PAUSE)
        resent = server.chunks()
        self.assertEqual(len(resent), WINDOW)
        self.assertEqual(resent[0]["offset"], len(received))
        received, _ = server.take_all(resent, received)
        self.assertEqual(received, CONTENT)
        finish = server.finish(stored())
        self.assertEqual(finish["sha256"], DIGEST)
        self.successResultOf(upload.done)

    def test_incomplete(self) -> None:
        """
        upload_incomplete at the end is said in the client's words.
        """
        upload = self.upload(b"tiny")
        UploadServer(self.server).ready()
        self.server.reply(
            self.server.take("upload_chunk"), "upload_progress", upload_id="u1", received=4
        )
        self.server.error(self.server.take("upload_finish"), "upload_incomplete")
        failure = self.failureResultOf(upload.done, TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_ERRORS["upload_incomplete"])
        self.assertEqual(self.server.sent(), [])

    def test_connection_lost(self) -> None:
        """
        A connection lost mid-upload fails it as offline: it may start
        again once the session is back.
        """
        upload = self.upload()
        UploadServer(self.server).ready()
        self.server.drop()
        failure = self.failureResultOf(upload.done, TransferOffline)
        self.assertEqual(failure.value.message, texts.FILE_OFFLINE)

    def test_unreadable_or_empty(self) -> None:
        """
        A local file that cannot be opened, or is empty, fails at once;
        nothing is sent.
        """
        gone = Upload(self.session.client.request, os.path.join(self.directory, "gone"))
        failure = self.failureResultOf(gone.start(), TransferFailed)
        self.assertIn("gone", failure.value.message)
        empty = Upload(self.session.client.request, self.local(b""))
        failure = self.failureResultOf(empty.start(), TransferFailed)
        self.assertEqual(failure.value.message, texts.FILE_EMPTY)
        self.assertEqual(self.server.sent(), [])

    def test_names_and_types(self) -> None:
        """
        Names lose what the server refuses and keep their extension when
        cut; types are guessed from the name.
        """
        self.assertEqual(wire_name("a\\b\x07c.txt"), "a_b_c.txt")
        self.assertEqual(wire_name(""), "file")
        long = wire_name("x" * 300 + ".jpeg")
        self.assertEqual((len(long), long[-5:]), (255, ".jpeg"))
        self.assertEqual(guess_mime("cat.png"), "image/png")
        self.assertEqual(guess_mime("cat.webp"), "image/webp")
        self.assertEqual(guess_mime("noextension"), "application/octet-stream")


class SendFileTests(TransferTestCase):
    """
    L{ChatClient.send_file}: a file message shown at once, its upload's
    progress on it, then sent like any message.
    """

    def setUp(self) -> None:
        super().setUp()
        self.changes: list[Any] = []
        self.session.state.add_listener(self.changes.append)

    def pending(self) -> PendingMessage:
        [pending] = self.session.state.conversation((PRIVATE, 2)).pending
        return pending

    def test_sent(self) -> None:
        """
        The file message shows as pending with its file; its progress moves
        in whole percents; once stored, send_message carries the file id,
        the caption and the client_msg_id, and the stored message takes the
        pending one's place.
        """
        pending = self.session.client.send_file((PRIVATE, 2), self.local(), caption="the notes")
        assert pending.file is not None
        self.assertEqual(
            (pending.text, pending.file.name, pending.file.size),
            ("the notes", "notes.bin", len(CONTENT)),
        )
        server = UploadServer(self.server)
        server.ready()
        self.assertTrue(self.pending().file.uploading)  # type: ignore[union-attr]
        received, _ = server.take_all()
        self.assertEqual(received, CONTENT)
        steps = [c for c in self.changes if isinstance(c, PendingChanged)]
        self.assertLessEqual(len(steps), 102)
        sent = [c.pending.file.sent for c in steps if c.pending.file.file_id is None]
        self.assertEqual(sent, sorted(sent))
        self.assertIn(len(CONTENT), sent)
        self.assertEqual(server.finish(stored())["sha256"], DIGEST)
        send = self.server.take("send_message")
        self.assertEqual(
            (send["target_type"], send["target_id"], send["file_id"], send["message"]),
            (PRIVATE, 2, stored()["id"], "the notes"),
        )
        self.assertEqual(send["client_msg_id"], pending.client_msg_id)
        self.server.reply(
            send,
            "on_new_message",
            message=file_message(9, stored(), "the notes", pending.client_msg_id),
        )
        conversation = self.session.state.conversation((PRIVATE, 2))
        self.assertEqual(conversation.pending, [])
        [held] = conversation.messages
        self.assertEqual((held.id, held.kind, held.file), (9, "file", File.from_payload(stored())))

    def test_no_caption(self) -> None:
        """
        Without a caption, send_message carries no message field.
        """
        self.session.client.send_file((PRIVATE, 2), self.local(b"tiny"))
        server = UploadServer(self.server)
        server.ready()
        server.take_all()
        server.finish(stored(b"tiny"))
        self.assertNotIn("message", self.server.take("send_message"))

    def test_reply(self) -> None:
        """
        A file may answer a message: send_message carries its id.
        """
        original = Message.from_payload(message(5, (2, "lzy"), PRIVATE, 1, "send it"))
        self.session.client.send_file((PRIVATE, 2), self.local(b"tiny"), reply_to=original)
        self.assertEqual(self.pending().reply_to.id, 5)  # type: ignore[union-attr]
        server = UploadServer(self.server)
        server.ready()
        server.take_all()
        server.finish(stored(b"tiny"))
        self.assertEqual(self.server.take("send_message")["reply_to"], 5)

    def test_cancel(self) -> None:
        """
        Cancelled mid-upload, the file message leaves the timeline: no more
        chunks, no upload_finish, no send_message.
        """
        pending = self.session.client.send_file((PRIVATE, 2), self.local())
        UploadServer(self.server).ready()
        in_flight = self.server.sent()
        self.assertTrue(self.session.client.cancel_file(pending.client_msg_id))
        self.assertEqual(self.session.state.conversation((PRIVATE, 2)).pending, [])
        for chunk in in_flight:
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=CHUNK_SIZE)
        # Only what makes the server forget the upload (UploadTests.test_cancel).
        [finish] = self.server.sent()
        self.assertEqual((finish["type"], finish["sha256"]), ("upload_finish", "0" * 64))
        self.server.error(finish, "upload_incomplete")
        self.assertEqual(self.server.sent(), [])
        self.assertEqual(self.session.state.conversation((PRIVATE, 2)).pending, [])

    def test_refused(self) -> None:
        """
        file_too_large (before any chunk), quota_exceeded and
        upload_incomplete leave the message marked with the client's
        sentence; Retry starts the upload again, Dismiss takes it away.
        """
        pending = self.session.client.send_file((PRIVATE, 2), self.local())
        for code in ("file_too_large", "quota_exceeded"):
            self.server.error(self.server.take("upload_start"), code)
            self.assertEqual(self.server.sent(), [])
            self.assertEqual(self.pending().error, texts.FILE_ERRORS[code])
            self.session.client.retry_file(pending.client_msg_id)
            self.assertIsNone(self.pending().error)
        server = UploadServer(self.server)
        server.ready()
        server.take_all()
        self.server.error(server.others.pop(0), "upload_incomplete")
        self.assertEqual(self.pending().error, texts.FILE_ERRORS["upload_incomplete"])
        self.assertEqual(self.server.sent(), [])
        self.assertTrue(self.session.client.cancel_file(pending.client_msg_id))
        self.assertEqual(self.session.state.conversation((PRIVATE, 2)).pending, [])

    def test_send_refused(self) -> None:
        """
        A send_message refused once the file is stored says why in the
        client's words; Retry sends the message again, with the same file.
        """
        pending = self.session.client.send_file((ROOM, 1), self.local(b"tiny"))
        server = UploadServer(self.server)
        server.ready()
        server.take_all()
        server.finish(stored(b"tiny"))
        self.server.error(self.server.take("send_message"), "not_in_room")
        conversation = self.session.state.conversation((ROOM, 1))
        self.assertEqual(conversation.pending[0].error, texts.FILE_ERRORS["not_in_room"])
        self.session.client.retry_file(pending.client_msg_id)
        again = self.server.take("send_message")
        self.assertEqual(
            (again["file_id"], again["client_msg_id"]),
            (stored(b"tiny")["id"], pending.client_msg_id),
        )
        self.assertEqual(self.server.sent(), [])

    def test_bad_input(self) -> None:
        """
        An empty or unreadable file, or a caption breaking the rules, is
        refused at once with a sentence: nothing shows, nothing is sent.
        """
        with self.assertRaises(ValueError) as raised:
            self.session.client.send_file((PRIVATE, 2), self.local(b""))
        self.assertEqual(str(raised.exception), texts.FILE_EMPTY)
        with self.assertRaises(ValueError):
            self.session.client.send_file((PRIVATE, 2), os.path.join(self.directory, "gone"))
        with self.assertRaises(ValueError):
            self.session.client.send_file((PRIVATE, 2), self.local(), caption="x" * 4001)
        self.assertEqual(self.session.state.conversation((PRIVATE, 2)).pending, [])
        self.assertEqual(self.server.sent(), [])

    def test_at_most_four_uploads(self) -> None:
        """
        Five files at once: four uploads start (a fifth would be
        not_allowed), the last waits its turn and starts when one ends.
        """
        for i in range(MAX_UPLOADS + 1):
            self.session.client.send_file((PRIVATE, 2), self.local(b"tiny", f"f{i}.bin"))
        starts = [r for r in self.server.sent() if r["type"] == "upload_start"]
        self.assertEqual([s["name"] for s in starts], [f"f{i}.bin" for i in range(MAX_UPLOADS)])
        waiting = self.session.state.conversation((PRIVATE, 2)).pending[-1]
        assert waiting.file is not None
        self.assertFalse(waiting.file.uploading)
        self.server.error(starts[0], "quota_exceeded")
        self.assertEqual(self.server.take("upload_start")["name"], f"f{MAX_UPLOADS}.bin")

    def test_reconnect(self) -> None:
        """
        A connection lost mid-upload leaves the message waiting, not
        failed; after the reconnect its upload starts again from the start.
        A message stored but not acknowledged goes out again with the same
        client_msg_id and file id.
        """
        first = self.session.client.send_file((PRIVATE, 2), self.local())
        second = self.session.client.send_file((PRIVATE, 2), self.local(b"tiny", "tiny.bin"))
        server = UploadServer(self.server)
        self.server.reply(
            self.server.take("upload_start"), "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE
        )
        tiny = next(r for r in self.server.sent() if r["type"] == "upload_start")
        self.server.reply(tiny, "upload_ready", upload_id="u2", chunk_size=CHUNK_SIZE)
        for chunk in server.chunks():
            if chunk["upload_id"] == "u2":
                self.server.reply(chunk, "upload_progress", upload_id="u2", received=4)
        self.server.reply(
            self.server.take("upload_finish"), "file_stored", file=stored(b"tiny", "tiny.bin")
        )
        self.server.take("send_message")
        new = self.session.reconnect()
        conversation = self.session.state.conversation((PRIVATE, 2))
        [waiting, unsent] = conversation.pending
        self.assertEqual(waiting.client_msg_id, first.client_msg_id)
        self.assertIsNone(waiting.error)
        requests = new.sent()
        kinds = [r["type"] for r in requests]
        self.assertIn("upload_start", kinds)
        [again] = [r for r in requests if r["type"] == "send_message"]
        self.assertEqual(
            (again["client_msg_id"], again["file_id"]),
            (second.client_msg_id, stored(b"tiny")["id"]),
        )
        self.assertEqual(unsent.client_msg_id, second.client_msg_id)

    def test_logout_stops_uploads(self) -> None:
        """
        Logging out stops every upload: nothing more goes out.
        """
        self.session.client.send_file((PRIVATE, 2), self.local())
        UploadServer(self.server).ready()
        in_flight = self.server.sent()
        self.session.client.logout()
        self.server.reply(self.server.take("logout"), "logout_successful")
        for chunk in in_flight:
            self.server.reply(chunk, "upload_progress", upload_id="u1", received=0)
        self.assertEqual([r["type"] for r in self.server.sent()], [])


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

    def test_out_of_order_within_window(self) -> None:
        """
        Chunks may come in any order: they are written in order, and while
        one is missing no more than a window's worth is asked for.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(self.session.client.request, File.from_payload(stored()), path)
        download.start()
        server = DownloadServer(self.server)
        first, *rest = server.waiting()
        for request in rest:
            server.answer(request, CONTENT)
        self.assertEqual(server.waiting(), [])  # the first is still missing
        server.answer(first, CONTENT)
        server.serve()
        with open(self.successResultOf(download.done), "rb") as f:
            self.assertEqual(f.read(), CONTENT)

    def test_rate_limited(self) -> None:
        """
        A chunk refused with rate_limited is asked for again after a pause.
        """
        path = os.path.join(self.directory, "saved.bin")
        download = Download(
            self.session.client.request,
            File.from_payload(stored()),
            path,
            clock=self.session.clock,
        )
        download.start()
        server = DownloadServer(self.server)
        first, *rest = server.waiting()
        self.server.error(first, "rate_limited")
        for request in rest:
            server.answer(request, CONTENT)
        self.assertEqual(server.waiting(), [])
        self.session.clock.advance(RETRY_PAUSE)
        [again] = server.waiting()
        self.assertEqual(again["offset"], 0)
        server.answer(again, CONTENT)
        server.serve()
        self.assertEqual(self.successResultOf(download.done), path)

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

    def held(self, cache: FileCache, content: bytes, age: float) -> File:
        """
        Put C{content} in C{cache}'s folder as if fetched C{age} seconds ago.

        @return: its file.
        """
        file = File.from_payload(stored(content))
        os.makedirs(cache.directory, exist_ok=True)
        path = cache.path_for(file)
        with open(path, "wb") as f:
            f.write(content)
        when = os.stat(path).st_mtime - age
        os.utime(path, (when, when))
        return file

    def test_limit(self) -> None:
        """
        After a download the cache holds no more than its limit: the files
        least recently used are removed first, never the one just fetched.
        """
        cache = FileCache(
            self.session.client.request,
            os.path.join(self.directory, "cache"),
            limit=len(CONTENT) + 150,
        )
        oldest = self.held(cache, b"a" * 100, age=300)
        older = self.held(cache, b"b" * 100, age=200)
        newer = self.held(cache, b"c" * 100, age=100)
        fetched = File.from_payload(stored())
        d = cache.fetch(fetched)
        self.serve()
        self.successResultOf(d)
        self.assertEqual(
            [cache.cached(f) is not None for f in (oldest, older, newer, fetched)],
            [False, False, True, True],
        )

    def test_limit_below_one_file(self) -> None:
        """
        A file larger than the whole limit is kept until the next download.
        """
        cache = FileCache(
            self.session.client.request, os.path.join(self.directory, "cache"), limit=10
        )
        other = self.held(cache, b"a" * 100, age=100)
        fetched = File.from_payload(stored())
        d = cache.fetch(fetched)
        self.serve()
        self.assertEqual(self.successResultOf(d), cache.cached(fetched))
        self.assertIsNone(cache.cached(other))

    def test_fetch_marks_used(self) -> None:
        """
        A fetch that finds its file held marks it used: it outlives a file
        fetched after it but used less recently.
        """
        cache = FileCache(
            self.session.client.request,
            os.path.join(self.directory, "cache"),
            limit=len(CONTENT) + 150,
        )
        used = self.held(cache, b"a" * 100, age=300)
        unused = self.held(cache, b"b" * 100, age=200)
        self.assertEqual(self.successResultOf(cache.fetch(used)), cache.cached(used))
        self.assertEqual(self.server.sent(), [])
        d = cache.fetch(File.from_payload(stored()))
        self.serve()
        self.successResultOf(d)
        self.assertIsNotNone(cache.cached(used))
        self.assertIsNone(cache.cached(unused))

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
        Sizes read as bytes, KiB, MiB; progress as whole percents, 100 only
        when done.
        """
        self.assertEqual(
            [texts.human_size(n) for n in (5, 1536, 25 * 1024 * 1024)],
            ["5 B", "1.5 KiB", "25.0 MiB"],
        )
        self.assertEqual([texts.percent(n, 1000) for n in (0, 5, 999, 1000)], [0, 0, 99, 100])


def png(width: int = 600, height: int = 400, colour: str = "#E03030") -> bytes:
    """
    @return: a PNG image of one colour.
    """
    from client.ui.files import png_bytes

    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    return png_bytes(image)


class WindowTests(AppTestCase):
    """
    The windows: file bubbles with their progress and buttons, images
    inline, saving, dropping and pasting.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.cache = os.path.join(self.mktemp(), "files")
        self.chat.files.cache.directory = self.cache
        self.chosen: list[str] = []
        self.patch(self.main, "ask_file", self._ask_file)
        self.view = self.main.history_view

    def _ask_file(self, title: str, save_as: str | None, chosen: Any) -> None:
        # The user picks the next path of self.chosen at once.
        chosen(self.chosen.pop(0))

    def local(self, content: bytes, name: str = "notes.bin") -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def row(self, row: int = -1) -> tuple[QStyleOptionViewItem, Any, Any]:
        """
        @return: the option, index and layout of a timeline row (by default
            the last).
        """
        model = self.view.model()
        if row < 0:
            row += model.rowCount()
        index = model.index(row, 0)
        delegate = self.view.itemDelegate()
        assert isinstance(delegate, MessageDelegate)
        option = QStyleOptionViewItem()
        option.initFrom(self.view)
        option.rect = self.view.visualRect(index)
        return option, index, delegate._layout(option, index)

    def click_at(self, option: QStyleOptionViewItem, point: QPointF) -> None:
        where = (point + QPointF(option.rect.topLeft())).toPoint()
        QTest.mouseClick(self.view.viewport(), Qt.MouseButton.LeftButton, pos=where)

    def button(self, row: int, text: str) -> tuple[QStyleOptionViewItem, QPointF]:
        """
        @return: where the button C{text} of row C{row}'s file card is.
        """
        option, _, layout = self.row(row)
        self.assertIsNotNone(layout.attachment)
        for place, label, _ in layout.attachment.buttons:
            if label == text:
                return option, place.center()
        raise AssertionError(f"no {text} among {layout.attachment.buttons}")

    def paint(self) -> QImage:
        """
        Paint the conversation as it is on screen, and run what painting
        asked for (images wanted).

        @return: what it looks like.
        """
        self.app.processEvents()
        self.view.executeDelayedItemsLayout()
        shot = self.view.viewport().grab().toImage()
        self.app.processEvents()
        return shot

    # Sending.

    def test_attach_shows_progress_and_cancels(self) -> None:
        """
        The attach button sends the chosen file: it shows at once as a
        bubble with a card (its name, how far it got, a progress bar and
        Cancel); Cancel stops the upload and takes the bubble away.
        """
        self.open((PRIVATE, 2), [])
        self.chosen.append(self.local(CONTENT))
        click(self.main.attach_button)
        option, _, layout = self.row()
        self.assertEqual(layout.attachment.card.detail, texts.uploading(0, len(CONTENT)))
        start = self.server.take("upload_start")
        self.assertEqual((start["name"], start["size"]), ("notes.bin", len(CONTENT)))
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)
        chunk = self.server.take("upload_chunk")
        self.server.reply(chunk, "upload_progress", upload_id="u1", received=CHUNK_SIZE)
        option, _, layout = self.row()
        card = layout.attachment.card
        self.assertEqual((card.name, card.mark), ("notes.bin", "BIN"))
        self.assertEqual(card.detail, texts.uploading(CHUNK_SIZE, len(CONTENT)))
        self.assertAlmostEqual(card.progress, CHUNK_SIZE / len(CONTENT))
        self.paint()
        self.server.sent()
        option, where = self.button(-1, "Cancel")
        self.click_at(option, where)
        self.assertEqual(self.view.model().rowCount(), 0)
        self.assertEqual(self.session.state.conversation((PRIVATE, 2)).pending, [])
        [finish] = transfers(self.server)
        self.assertEqual((finish["type"], finish["sha256"]), ("upload_finish", "0" * 64))

    def test_sent_message_appears(self) -> None:
        """
        What the input box holds goes with the file as its caption; once
        sent, the stored file message takes the bubble's place, with a Save
        button.
        """
        self.open((PRIVATE, 2), [])
        self.main.compose.setPlainText("the notes")
        self.chosen.append(self.local(CONTENT))
        click(self.main.attach_button)
        self.assertEqual(self.main.compose.toPlainText(), "")
        server = UploadServer(self.server)
        server.ready()
        server.take_all()
        server.finish(stored())
        send = self.server.take("send_message")
        self.assertEqual(send["message"], "the notes")
        _, _, layout = self.row()
        self.assertEqual(layout.attachment.card.detail, texts.UPLOAD_SENDING)
        self.server.reply(
            send,
            "on_new_message",
            message=file_message(9, stored(), "the notes", send["client_msg_id"]),
        )
        self.assertEqual(self.view.model().rowCount(), 1)
        _, _, layout = self.row()
        self.assertIsInstance(self.view.model().entry(0), Message)
        self.assertEqual(layout.document.toPlainText(), "the notes")
        card = layout.attachment.card
        self.assertEqual(
            (card.name, card.detail, [b[0] for b in card.buttons]),
            ("notes.bin", texts.human_size(len(CONTENT)), ["Save"]),
        )
        self.paint()

    def test_upload_refused(self) -> None:
        """
        A refused upload says why in its bubble, in the client's words,
        with Retry and Dismiss; Dismiss takes it away.
        """
        self.open((PRIVATE, 2), [])
        self.chosen.append(self.local(b"tiny"))
        click(self.main.attach_button)
        self.server.error(self.server.take("upload_start"), "file_too_large")
        option, index, layout = self.row()
        delegate = self.view.itemDelegate()
        self.assertEqual(
            delegate._footer_text(index), f"Not sent: {texts.FILE_ERRORS['file_too_large']}"
        )
        self.assertEqual([b[1] for b in layout.attachment.buttons], ["Dismiss", "Retry"])
        self.paint()
        option, where = self.button(-1, "Retry")
        self.click_at(option, where)
        self.server.error(self.server.take("upload_start"), "quota_exceeded")
        _, index, _ = self.row()
        self.assertEqual(
            delegate._footer_text(index), f"Not sent: {texts.FILE_ERRORS['quota_exceeded']}"
        )
        option, where = self.button(-1, "Dismiss")
        self.click_at(option, where)
        self.assertEqual(self.view.model().rowCount(), 0)

    def test_empty_file(self) -> None:
        """
        An empty file is refused in the message bar, before anything shows.
        """
        self.open((PRIVATE, 2), [])
        self.chosen.append(self.local(b""))
        click(self.main.attach_button)
        self.assertEqual(self.main.notice_bar.text(), texts.FILE_EMPTY)
        self.assertEqual(self.view.model().rowCount(), 0)
        self.assertEqual(transfers(self.server), [])

    def test_drop_files(self) -> None:
        """
        Files dropped on the conversation are sent to it; a folder is
        refused with a sentence.
        """
        self.open((PRIVATE, 2), [])
        path = self.local(b"dropped", "dropped.txt")
        folder = os.path.join(self.directory, "folder")
        os.makedirs(folder)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(path), QUrl.fromLocalFile(folder)])
        viewport = self.view.viewport()
        enter = QDragEnterEvent(
            QPoint(50, 50),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, enter)
        self.assertTrue(enter.isAccepted())
        self.assertTrue(self.view.dropping)
        drop = QDropEvent(
            QPointF(50, 50),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, drop)
        self.assertFalse(self.view.dropping)
        start = self.server.take("upload_start")
        self.assertEqual(
            (start["name"], start["size"], start["mime"]), ("dropped.txt", 7, "text/plain")
        )
        self.assertEqual(transfers(self.server), [])
        self.assertEqual(self.main.notice_bar.text(), texts.FOLDER_DROPPED)

    def test_drop_refused_elsewhere(self) -> None:
        """
        Text dragged over the conversation is not taken.
        """
        self.open((PRIVATE, 2), [])
        mime = QMimeData()
        mime.setText("just words")
        enter = QDragEnterEvent(
            QPoint(50, 50),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(self.view.viewport(), enter)
        self.assertFalse(enter.isAccepted())

    def test_paste_image(self) -> None:
        """
        Pasting an image (a screenshot) into the input box sends it as a
        PNG file, with the text already typed as its caption.
        """
        self.open((PRIVATE, 2), [])
        image = QImage(30, 20, QImage.Format.Format_RGB32)
        image.fill(QColor("#3060E0"))
        clipboard = QApplication.clipboard()
        clipboard.setImage(image)
        self.main.compose.setPlainText("look")
        self.main.compose.paste()
        self.assertEqual(self.main.compose.toPlainText(), "")
        start = self.server.take("upload_start")
        self.assertEqual(start["mime"], "image/png")
        self.assertTrue(start["name"].startswith("Pasted image "))
        self.assertTrue(start["name"].endswith(".png"))
        self.server.reply(start, "upload_ready", upload_id="u1", chunk_size=CHUNK_SIZE)
        chunk = self.server.take("upload_chunk")
        data = base64.b64decode(chunk["data"])
        self.assertEqual(len(data), start["size"])
        pasted = QImage.fromData(data, "PNG")
        self.assertEqual((pasted.width(), pasted.height()), (30, 20))
        self.assertEqual(pasted.pixelColor(5, 5), QColor("#3060E0"))
        pending = self.session.state.conversation((PRIVATE, 2)).pending[0]
        self.assertEqual(pending.text, "look")

    def test_paste_files(self) -> None:
        """
        Files copied in a file manager and pasted into the box are sent,
        not written into it as paths; text pastes as text.
        """
        self.open((PRIVATE, 2), [])
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(self.local(b"copied", "copied.bin"))])
        QApplication.clipboard().setMimeData(mime)
        self.main.compose.paste()
        self.assertEqual(self.server.take("upload_start")["name"], "copied.bin")
        self.assertEqual(self.main.compose.toPlainText(), "")
        QApplication.clipboard().setText("plain words")
        self.main.compose.paste()
        self.assertEqual(self.main.compose.toPlainText(), "plain words")
        self.assertEqual(transfers(self.server), [])

    # Images.

    def image_history(self, content: bytes) -> list[Payload]:
        """
        @return: a page of history: an image message, then 40 text
            messages, so that the image is out of view at first.
        """
        image = file_message(1, stored(content, "cat.png", "image/png"))
        texts_after = [message(i, NCR, PRIVATE, 2, f"line {i}") for i in range(2, 42)]
        return [image, *texts_after]

    def test_image_fetched_when_shown(self) -> None:
        """
        An image is downloaded only once its row is painted (scrolled into
        view), into the disk cache by its SHA-256; then it shows inline,
        scaled to fit, and a second message with the same content fetches
        nothing, in this session or the next.
        """
        content = png()
        self.open((PRIVATE, 2), self.image_history(content))
        self.paint()
        self.assertEqual(transfers(self.server), [])
        option, _, layout = self.row(0)
        self.assertEqual(layout.attachment.rect.size(), QSizeF(280, 180))  # unknown size yet
        self.view.scrollToTop()
        self.paint()
        [request] = transfers(self.server)
        self.assertEqual((request["type"], request["offset"]), ("download", 0))
        DownloadServer(self.server).answer(request, content)
        digest = hashlib.sha256(content).hexdigest()
        self.assertTrue(os.path.isfile(os.path.join(self.cache, digest)))
        option, _, layout = self.row(0)
        rect = layout.attachment.rect
        self.assertAlmostEqual(rect.width() / rect.height(), 1.5, places=2)
        self.assertLessEqual(rect.width(), MessageDelegate.IMAGE_WIDTH)
        self.assertGreater(rect.width(), 280)
        self.view.scrollToTop()
        shot = self.paint()
        centre = (rect.center() + QPointF(option.rect.topLeft())).toPoint()
        self.assertEqual(shot.pixelColor(centre), QColor("#E03030"))
        self.assertEqual(transfers(self.server), [])
        # Another message with the same content, under another file id.
        again = file_message(50, stored(content, "same.png", "image/png", id="other"))
        self.server.push("on_new_message", message=again)
        self.view.scrollToBottom()
        self.paint()
        self.assertEqual(transfers(self.server), [])
        # The next session's store finds it on disk.
        fresh = FileStore(self.session.client.request, self.cache)
        file = File.from_payload(again["file"])
        fresh.want(file)
        self.app.processEvents()
        self.assertIsNotNone(fresh.image(file))
        self.assertEqual(transfers(self.server), [])

    def test_image_click_opens_it(self) -> None:
        """
        A click on an inline image opens it at its full size in a window of
        its own.
        """
        content = png(640, 200)
        self.open((PRIVATE, 2), [file_message(1, stored(content, "wide.png", "image/png"))])
        self.paint()
        DownloadServer(self.server).serve(content)
        option, index, layout = self.row(0)
        self.assertEqual(
            self.view.itemDelegate().hit(option, index, layout.attachment.rect.center()),
            ("image", stored(content)["id"]),
        )
        self.click_at(option, layout.attachment.rect.center())
        viewer = self.main.image_viewer
        self.assertIsInstance(viewer, ImageViewer)
        self.assertTrue(viewer.isVisible())
        pixmap = viewer.picture.pixmap()
        self.assertEqual((pixmap.width(), pixmap.height()), (640, 200))
        viewer.close()

    def test_image_click_after_cache_trimmed(self) -> None:
        """
        An image shown, whose file has since left the disk cache, is fetched
        again when clicked, then opened.
        """
        content = png(640, 200)
        self.open((PRIVATE, 2), [file_message(1, stored(content, "wide.png", "image/png"))])
        self.paint()
        DownloadServer(self.server).serve(content)
        file = File.from_payload(stored(content, "wide.png", "image/png"))
        path = self.chat.files.full_path(file)
        assert path is not None
        os.remove(path)
        option, _, layout = self.row(0)
        self.click_at(option, layout.attachment.rect.center())
        self.assertIsNone(self.main.image_viewer)
        DownloadServer(self.server).serve(content)
        viewer = self.main.image_viewer
        self.assertIsInstance(viewer, ImageViewer)
        pixmap = viewer.picture.pixmap()
        self.assertEqual((pixmap.width(), pixmap.height()), (640, 200))
        viewer.close()

    def test_image_gone(self) -> None:
        """
        An image the server no longer has says so in its place, in the
        client's words, and is not asked for at every paint.
        """
        content = png(40, 40)
        self.open((PRIVATE, 2), [file_message(1, stored(content, "gone.png", "image/png"))])
        self.paint()
        self.server.error(self.server.take("download"), "no_such_file")
        file = File.from_payload(stored(content, "gone.png", "image/png"))
        self.assertEqual(
            self.chat.files.image_error(file),
            texts.image_unavailable(texts.FILE_ERRORS["no_such_file"]),
        )
        self.paint()
        self.paint()
        self.assertEqual(transfers(self.server), [])

    def test_broken_image(self) -> None:
        """
        Content labelled as an image that is none shows a sentence.
        """
        content = b"not a picture at all"
        self.open((PRIVATE, 2), [file_message(1, stored(content, "fake.png", "image/png"))])
        self.paint()
        DownloadServer(self.server).serve(content)
        file = File.from_payload(stored(content, "fake.png", "image/png"))
        self.assertEqual(self.chat.files.image_error(file), texts.IMAGE_UNREADABLE)
        self.paint()

    def test_deleted_file_message(self) -> None:
        """
        A deleted file message shows as deleted, with no file left.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(), "see this")])
        self.server.push("message_deleted", target_type=PRIVATE, target_id=2, message_id=4)
        _, _, layout = self.row(0)
        self.assertIsNone(layout.attachment)
        self.assertEqual(layout.document.toPlainText(), DELETED)
        self.paint()

    # Saving.

    def test_save(self) -> None:
        """
        Save asks where, then fetches the file there: the card shows how far
        it got and Cancel meanwhile; once the SHA-256 matches, the file is
        in place and the message bar says so.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(), "see this")])
        path = os.path.join(self.directory, "saved.bin")
        self.chosen.append(path)
        self.paint()
        option, where = self.button(0, "Save")
        self.click_at(option, where)
        server = DownloadServer(self.server)
        first = server.waiting()
        self.assertEqual(len(first), WINDOW)
        server.answer(first[0], CONTENT)
        _, _, layout = self.row(0)
        card = layout.attachment.card
        self.assertEqual(card.detail, texts.saving(CHUNK_SIZE, len(CONTENT)))
        self.assertEqual([b[0] for b in card.buttons], ["Cancel"])
        self.paint()
        for request in first[1:]:
            server.answer(request, CONTENT)
        server.serve()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertEqual(self.main.notice_bar.text(), texts.file_saved("notes.bin", path))
        _, _, layout = self.row(0)
        self.assertEqual([b[0] for b in layout.attachment.card.buttons], ["Save"])

    def test_save_corrupt(self) -> None:
        """
        A saved file that does not match its SHA-256 says so, and leaves
        nothing behind.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(), "see this")])
        held = self.session.state.conversation((PRIVATE, 2)).messages[0]
        self.chosen.append(os.path.join(self.directory, "saved.bin"))
        self.main.save_file(held)
        DownloadServer(self.server).serve(b"y" * len(CONTENT))
        self.assertEqual(self.main.notice_bar.text(), texts.FILE_CORRUPT)
        self.assertEqual(os.listdir(self.directory), [])

    def test_save_cancelled(self) -> None:
        """
        Cancel on a card being saved stops the download and removes the
        partial file.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(), "see this")])
        self.chosen.append(os.path.join(self.directory, "saved.bin"))
        self.paint()
        option, where = self.button(0, "Save")
        self.click_at(option, where)
        waiting = transfers(self.server)
        option, where = self.button(0, "Cancel")
        self.click_at(option, where)
        for request in waiting:
            DownloadServer(self.server).answer(request, CONTENT)
        self.assertEqual(transfers(self.server), [])
        self.assertEqual(os.listdir(self.directory), [])
        _, _, layout = self.row(0)
        self.assertEqual([b[0] for b in layout.attachment.card.buttons], ["Save"])

    def test_save_gone(self) -> None:
        """
        A file the server no longer has says so in the message bar.
        """
        self.open((PRIVATE, 2), [file_message(4, stored(), "see this")])
        held = self.session.state.conversation((PRIVATE, 2)).messages[0]
        self.chosen.append(os.path.join(self.directory, "saved.bin"))
        self.main.save_file(held)
        self.server.error(self.server.take("download"), "no_such_file")
        self.assertEqual(self.main.notice_bar.text(), texts.FILE_ERRORS["no_such_file"])
        self.assertEqual(os.listdir(self.directory), [])


class StoreTests(SynchronousTestCase):
    """
    L{FileStore} on its own, reconnecting.
    """

    def test_offline_failures_forgotten_online(self) -> None:
        """
        An image that could not be fetched while offline is fetched again
        once the connection is back.
        """
        qapp()
        session = Session()
        session.log_in()
        session.server.sent()
        store = FileStore(session.client.request, self.mktemp())
        file = File.from_payload(stored(png(8, 8), "dot.png", "image/png"))
        session.server.drop()
        store.want(file)
        qapp().processEvents()
        self.assertEqual(store.image_error(file), texts.image_unavailable(texts.FILE_OFFLINE))
        session.clock.advance(1.0)
        session.answer_login_again()
        session.server.sent()
        store.connection_changed("online")
        self.assertIsNone(store.image_error(file))
        store.want(file)
        qapp().processEvents()
        session.server.take("download")
