"""
Sending and fetching files (PROTOCOL.md section 14), without Qt.

An L{Upload} reads a local file in L{CHUNK_SIZE} pieces, keeps up to
L{WINDOW} C{upload_chunk}s in flight (the server answers in order, so the
offsets are known ahead), hashes as it reads, then C{upload_finish}es and
sends the file message.  A L{Download} asks for up to L{WINDOW} chunks at a
time, writes them to C{<path>.part}, checks the SHA-256 at the end and only
then renames the file into place.  A L{FileCache} keeps downloaded files by
digest, so that the same content is never fetched twice.

Reads and writes are small and synchronous, on the reactor's thread: one
chunk at a time, never the whole file.  Each transfer reports progress to a
callable and ends by firing its L{Deferred}: with the stored message or the
path, or failing with L{TransferFailed} (a sentence for people) or
L{TransferCancelled}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import re
from collections.abc import Callable
from typing import IO, Any, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from client import texts
from client.protocol import ChatError, Disconnected
from client.state import File, Key, Message, Payload

#: Bytes in one chunk, sent or fetched (PROTOCOL.md section 14).
CHUNK_SIZE: Final = 32 * 1024
#: Chunks in flight at most, each way.
WINDOW: Final = 8

#: Told C{(done, total)} bytes as a transfer goes.
Progress = Callable[[int, int], None]

#: How a transfer talks to the server: L{client.session.ChatClient.request}.
Request = Callable[..., "Deferred[Payload]"]


class TransferFailed(Exception):
    """
    A transfer stopped; C{message} says why, for people.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransferCancelled(Exception):
    """
    The user cancelled the transfer.
    """


def _sentence(failure: Failure) -> str:
    """
    @return: what people are told of a request that failed.
    """
    error = failure.value
    if isinstance(error, ChatError):
        return texts.file_error(error.code) or error.message
    if isinstance(error, Disconnected):
        return texts.FILE_OFFLINE
    return str(error)


def guess_mime(path: str) -> str:
    """
    @return: the type of the file at C{path}, by its name.
    """
    mime, _ = mimetypes.guess_type(path)
    return mime or "application/octet-stream"


class Upload:
    """
    Send one local file to a conversation.

    @ivar name: the file's name, as the others see it.
    @ivar size: its length in bytes.
    @ivar sent: the bytes the server acknowledged so far.
    @ivar done: fires with the stored file message, or fails with
        L{TransferFailed} or L{TransferCancelled}.
    """

    log = Logger()

    def __init__(
        self,
        request: Request,
        path: str,
        key: Key,
        caption: str = "",
        mime: str | None = None,
        progress: Progress | None = None,
        apply_reply: Callable[[Payload], Any] | None = None,
    ) -> None:
        """
        @param request: sends a request and fires with its reply.
        @param key: the conversation the file goes to.
        @param caption: the text sent with the file (may be empty).
        @param apply_reply: given the C{send_message} reply, so that the
            message shows (L{client.state.ClientState.apply_reply}).
        """
        self.path = path
        self.name = os.path.basename(path)
        self.key = key
        self.caption = caption
        self.mime = mime or guess_mime(path)
        self.size = 0
        self.sent = 0
        self.done: Deferred[Message] = Deferred()
        self._request = request
        self._progress = progress
        self._apply_reply = apply_reply
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._upload_id: str | None = None
        self._chunk = CHUNK_SIZE
        self._next_offset = 0
        self._in_flight = 0
        self._over = False

    def start(self) -> Deferred[Message]:
        """
        Open the file and ask the server to take it.

        @return: L{done}.
        """
        try:
            self._file = open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as e:
            self._fail(texts.file_unreadable(self.path, e.strerror or str(e)))
            return self.done
        d = self._request("upload_start", name=self.name, size=self.size, mime=self.mime)
        d.addCallbacks(self._ready, self._refused)
        return self.done

    def cancel(self) -> None:
        """
        Stop: no more chunk goes out, and nothing is sent.
        """
        if not self._over:
            self._end()
            self.done.errback(Failure(TransferCancelled()))

    @property
    def running(self) -> bool:
        """
        Whether the upload is still going.
        """
        return not self._over

    def _ready(self, reply: Payload) -> None:
        if self._over:
            return
        self._upload_id = str(reply["upload_id"])
        self._chunk = max(1, min(CHUNK_SIZE, int(reply.get("chunk_size") or CHUNK_SIZE)))
        self._fill_window()

    def _fill_window(self) -> None:
        while not self._over and self._in_flight < WINDOW and self._next_offset < self.size:
            offset = self._next_offset
            assert self._file is not None
            try:
                data = self._file.read(min(self._chunk, self.size - offset))
            except OSError as e:
                self._fail(texts.file_unreadable(self.path, e.strerror or str(e)))
                return
            if not data:
                self._fail(texts.file_unreadable(self.path, "it became shorter while sending"))
                return
            self._hash.update(data)
            self._next_offset += len(data)
            self._in_flight += 1
            d = self._request(
                "upload_chunk",
                upload_id=self._upload_id,
                offset=offset,
                data=base64.b64encode(data).decode("ascii"),
            )
            d.addCallbacks(self._acknowledged, self._refused)

    def _acknowledged(self, reply: Payload) -> None:
        if self._over:
            return
        self._in_flight -= 1
        self.sent = max(self.sent, int(reply.get("received", self.sent)))
        if self._progress is not None:
            self._progress(self.sent, self.size)
        if self._next_offset < self.size:
            self._fill_window()
        elif self._in_flight == 0:
            self._close_file()
            d = self._request(
                "upload_finish", upload_id=self._upload_id, sha256=self._hash.hexdigest()
            )
            d.addCallbacks(self._stored, self._refused)

    def _stored(self, reply: Payload) -> None:
        if self._over:
            return
        stored = File.from_payload(reply["file"])
        kind, target = self.key
        fields: dict[str, Any] = {"target_type": kind, "target_id": target, "file_id": stored.id}
        if self.caption:
            fields["message"] = self.caption
        d = self._request("send_message", **fields)
        d.addCallbacks(self._sent, self._refused)

    def _sent(self, reply: Payload) -> None:
        if self._over:
            return
        self._end()
        if self._apply_reply is not None:
            self._apply_reply(reply)
        self.done.callback(Message.from_payload(reply["message"]))

    def _refused(self, failure: Failure) -> None:
        if self._over:
            return
        if not failure.check(ChatError, Disconnected):
            self.log.failure("An upload failed", failure)
        self._fail(_sentence(failure))

    def _fail(self, sentence: str) -> None:
        self._end()
        self.done.errback(Failure(TransferFailed(sentence)))

    def _end(self) -> None:
        self._over = True
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Download:
    """
    Fetch one stored file into a local path.

    @ivar received: the bytes written so far.
    @ivar done: fires with the path once the whole file is there and its
        SHA-256 matches; fails with L{TransferFailed} (the partial file is
        removed) or L{TransferCancelled}.
    """

    log = Logger()

    def __init__(
        self, request: Request, file: File, path: str, progress: Progress | None = None
    ) -> None:
        self.file = file
        self.path = path
        self.partial = path + ".part"
        self.received = 0
        self.done: Deferred[str] = Deferred()
        self._request = request
        self._progress = progress
        self._out: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._next_offset = 0
        self._in_flight = 0
        # Chunks that came before one asked earlier: written once in order.
        self._early: dict[int, bytes] = {}
        self._over = False

    def start(self) -> Deferred[str]:
        """
        Create the partial file and ask for the first chunks.

        @return: L{done}.
        """
        try:
            self._out = open(self.partial, "wb")
        except OSError as e:
            self._end(texts.file_unwritable(self.path, e.strerror or str(e)))
            return self.done
        if self.file.size <= 0:
            self._finish()
        else:
            self._fill_window()
        return self.done

    def cancel(self) -> None:
        """
        Stop, and remove the partial file.
        """
        if not self._over:
            self._end(None)

    @property
    def running(self) -> bool:
        """
        Whether the download is still going.
        """
        return not self._over

    def _fill_window(self) -> None:
        while not self._over and self._in_flight < WINDOW and self._next_offset < self.file.size:
            offset = self._next_offset
            length = min(CHUNK_SIZE, self.file.size - offset)
            self._next_offset += length
            self._in_flight += 1
            d = self._request("download", file_id=self.file.id, offset=offset, length=length)
            d.addCallbacks(self._arrived, self._refused, callbackArgs=(offset, length))

    def _arrived(self, reply: Payload, offset: int, length: int) -> None:
        if self._over:
            return
        self._in_flight -= 1
        try:
            data = base64.b64decode(str(reply["data"]), validate=True)
        except (KeyError, binascii.Error):
            data = b""
        if int(reply.get("offset", offset)) != offset or len(data) != length:
            self._end(texts.FILE_BROKEN_REPLY)
            return
        self._early[offset] = data
        try:
            self._write_in_order()
        except OSError as e:
            self._end(texts.file_unwritable(self.path, e.strerror or str(e)))
            return
        if self._progress is not None:
            self._progress(self.received, self.file.size)
        if self.received >= self.file.size:
            self._finish()
        else:
            self._fill_window()

    def _write_in_order(self) -> None:
        assert self._out is not None
        while self.received in self._early:
            data = self._early.pop(self.received)
            self._out.write(data)
            self._hash.update(data)
            self.received += len(data)

    def _finish(self) -> None:
        assert self._out is not None
        self._out.close()
        self._out = None
        if self._hash.hexdigest() != self.file.sha256:
            self._end(texts.FILE_CORRUPT)
            return
        try:
            os.replace(self.partial, self.path)
        except OSError as e:
            self._end(texts.file_unwritable(self.path, e.strerror or str(e)))
            return
        self._over = True
        self.done.callback(self.path)

    def _refused(self, failure: Failure) -> None:
        if self._over:
            return
        if not failure.check(ChatError, Disconnected):
            self.log.failure("A download failed", failure)
        self._end(_sentence(failure))

    def _end(self, sentence: str | None) -> None:
        """
        Stop, remove the partial file, and fail L{done}: with
        L{TransferFailed}(C{sentence}), or L{TransferCancelled} if L{None}.
        """
        self._over = True
        self._early.clear()
        if self._out is not None:
            self._out.close()
            self._out = None
        try:
            os.remove(self.partial)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warn("Cannot remove {path}: {e}", path=self.partial, e=e)
        error = TransferCancelled() if sentence is None else TransferFailed(sentence)
        self.done.errback(Failure(error))


_DIGEST = re.compile("[0-9a-f]{64}")


def default_cache_directory() -> str:
    """
    @return: where downloaded files are kept: C{$XDG_CACHE_HOME/chatd/files},
        by default C{~/.cache/chatd/files}.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "chatd", "files")


class FileCache:
    """
    Downloaded files on disk, named by their SHA-256: a file whose content
    is there already, or on its way, is not fetched again.
    """

    def __init__(self, request: Request, directory: str | None = None) -> None:
        """
        @param directory: where the files go (created when needed); by
            default L{default_cache_directory}.
        """
        self.directory = directory or default_cache_directory()
        self._request = request
        self._fetching: dict[str, tuple[Download, list[Deferred[str]]]] = {}

    def path_for(self, file: File) -> str:
        """
        @return: where C{file}'s content is kept.
        @raise ValueError: when its digest is not 64 lower-case hex digits.
        """
        if not _DIGEST.fullmatch(file.sha256):
            raise ValueError(f"not a SHA-256 digest: {file.sha256!r}")
        return os.path.join(self.directory, file.sha256)

    def cached(self, file: File) -> str | None:
        """
        @return: the path of C{file}'s content if it is held, else L{None}.
        """
        try:
            path = self.path_for(file)
        except ValueError:
            return None
        return path if os.path.isfile(path) else None

    def fetching(self, file: File) -> bool:
        """
        Whether C{file}'s content is being downloaded.
        """
        return file.sha256 in self._fetching

    def fetch(self, file: File, progress: Progress | None = None) -> Deferred[str]:
        """
        @return: fires with the path of C{file}'s content, downloaded first
            unless held already; fails with L{TransferFailed}.
        """
        path = self.cached(file)
        if path is not None:
            return succeed(path)
        waiter: Deferred[str] = Deferred()
        running = self._fetching.get(file.sha256)
        if running is not None:
            running[1].append(waiter)
            return waiter
        try:
            path = self.path_for(file)
            os.makedirs(self.directory, exist_ok=True)
        except (ValueError, OSError) as e:
            return fail(TransferFailed(str(e)))
        download = Download(self._request, file, path, progress)
        self._fetching[file.sha256] = (download, [waiter])
        download.start().addBoth(self._fetched, file.sha256)
        return waiter

    def _fetched(self, result: str | Failure, digest: str) -> None:
        _, waiters = self._fetching.pop(digest)
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
