"""
Sending and fetching files (PROTOCOL.md section 14), without Qt.

An L{Upload} reads a local file (or bytes held in memory, a pasted image)
in L{CHUNK_SIZE} pieces and keeps up to L{WINDOW} C{upload_chunk}s in
flight: the server answers in order, so the offsets are known ahead.  Each
chunk is kept until the server acknowledges it and hashed then, in order,
so that after C{rate_limited} the upload goes on from what the server has,
after a pause, without hashing anything twice.  It ends with
C{upload_finish} and fires with the stored L{File}; the file message itself
is sent by the session (L{client.session.ChatClient.send_file}), which
retries it across reconnects like any message.

A L{Download} asks for up to L{WINDOW} chunks at a time, writes them in
order to C{<path>.part}, checks the SHA-256 at the end and only then
renames the file into place.  A L{FileCache} keeps downloaded files by
digest, so that the same content is never fetched twice.

Reads and writes are small and synchronous, on the reactor's thread: one
chunk at a time, never the whole file.  Each transfer reports progress to a
callable and ends by firing its L{Deferred}: with the stored file or the
path, or failing with L{TransferFailed} (a sentence for people; its
L{TransferOffline} kind when the connection went) or L{TransferCancelled}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import mimetypes
import os
import re
import unicodedata
from collections.abc import Callable
from typing import IO, Final

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd import wire
from client import texts
from client.protocol import ChatError, Disconnected
from client.state import File, Payload

#: Bytes in one chunk, sent or fetched (PROTOCOL.md section 14).
CHUNK_SIZE: Final = 32 * 1024
#: Chunks in flight at most, each way.
WINDOW: Final = 8
#: Seconds to wait after C{rate_limited} before going on.
RETRY_PAUSE: Final = 1.0
#: The longest file name the server takes, in code points.
MAX_NAME: Final = 255
#: Bytes the disk cache of downloaded files keeps at most; the least
#: recently used go first.
CACHE_LIMIT: Final = 512 * 1024 * 1024

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


class TransferOffline(TransferFailed):
    """
    A transfer stopped because the connection was lost (or never there):
    it may start again once the session is back.
    """

    def __init__(self, message: str = texts.FILE_OFFLINE) -> None:
        super().__init__(message)


class TransferCancelled(Exception):
    """
    The user cancelled the transfer.
    """


def _failed(failure: Failure) -> TransferFailed:
    """
    @return: what a transfer whose request failed with C{failure} fails
        with: a sentence for people.
    """
    error = failure.value
    if isinstance(error, Disconnected):
        return TransferOffline()
    if isinstance(error, ChatError):
        return TransferFailed(texts.file_error(error.code) or error.message)
    return TransferFailed(str(error))


def _rate_limited(failure: Failure) -> bool:
    error = failure.value
    return isinstance(error, ChatError) and error.code == wire.RATE_LIMITED


def guess_mime(name: str) -> str:
    """
    @return: the type of a file called C{name}, by its extension, as
        PROTOCOL.md section 14 takes it (C{application/octet-stream} when
        unknown).
    """
    mime, _ = mimetypes.guess_type(name, strict=False)
    if mime is None or not mime.isascii() or len(mime) > 127:
        return "application/octet-stream"
    return mime


def wire_name(name: str) -> str:
    """
    @return: C{name} as the server takes a file's name (PROTOCOL.md section
        14): C{/}, C{\\} and control characters replaced by C{_}, cut to
        L{MAX_NAME} code points keeping the extension, C{"file"} if empty.
    """
    cleaned = "".join(
        "_" if c in "/\\" or unicodedata.category(c) == "Cc" else c for c in name
    ).strip()
    if not cleaned:
        return "file"
    if len(cleaned) > MAX_NAME:
        stem, extension = os.path.splitext(cleaned)
        if len(extension) > 16:
            stem, extension = cleaned, ""
        cleaned = stem[: MAX_NAME - len(extension)] + extension
    return cleaned


class Upload:
    """
    Send one file's content to the server, and have it stored.

    @ivar name: the file's name, as the others see it.
    @ivar size: its length in bytes.
    @ivar sent: the bytes the server acknowledged so far.
    @ivar done: fires with the stored L{File}, or fails with
        L{TransferFailed} or L{TransferCancelled}.
    """

    log = Logger()

    def __init__(
        self,
        request: Request,
        path: str | None = None,
        data: bytes | None = None,
        name: str | None = None,
        mime: str | None = None,
        progress: Progress | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param request: sends a request and fires with its reply.
        @param path: the local file to send; or
        @param data: the content to send, held in memory (a pasted image).
        @param name: the name it gets; by default the last part of C{path}.
        @param mime: its type; by default guessed from C{name}.
        @param clock: for the pause after C{rate_limited}; without it,
            C{rate_limited} fails the upload.
        """
        if (path is None) == (data is None):
            raise TypeError("give a path or data, not both")
        self.path = path
        self._data = data
        self.name = wire_name(name or os.path.basename(path or ""))
        self.mime = mime or guess_mime(self.name)
        self.size = 0 if data is None else len(data)
        self.sent = 0
        self.done: Deferred[File] = Deferred()
        self._request = request
        self._progress = progress
        self._clock = clock
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._upload_id: str | None = None
        self._chunk = CHUNK_SIZE
        # The chunks sent and not yet acknowledged, by offset, in order.
        self._unacknowledged: dict[int, bytes] = {}
        self._next_offset = 0
        self._in_flight = 0
        # After rate_limited: the chunks in flight are refused too, then
        # the upload goes on from what the server has, after a pause.
        self._backing_off = False
        self._resume: IDelayedCall | None = None
        self._over = False
        self._cancelled = False
        # Whether upload_finish went out (the upload is over on the server).
        self._finishing = False

    @property
    def running(self) -> bool:
        """
        Whether the upload is still going.
        """
        return not self._over

    def start(self) -> Deferred[File]:
        """
        Open the file and ask the server to take it.

        @return: L{done}.
        """
        try:
            if self._data is not None:
                self._file = io.BytesIO(self._data)
            else:
                assert self.path is not None
                self._file = open(self.path, "rb")
                self.size = os.fstat(self._file.fileno()).st_size
        except OSError as e:
            self._fail(TransferFailed(texts.file_unreadable(self.name, e.strerror or str(e))))
            return self.done
        if self.size <= 0:
            self._fail(TransferFailed(texts.FILE_EMPTY))
            return self.done
        d = self._request("upload_start", name=self.name, size=self.size, mime=self.mime)
        d.addCallbacks(self._ready, self._refused).addErrback(self._broken)
        return self.done

    def cancel(self, abandon: bool = True) -> None:
        """
        Stop: no more chunk goes out, and nothing is stored.

        @param abandon: have the server forget the upload now
            (L{_abandon}); not when the connection is closing anyway.
        """
        if not self._over:
            self._cancelled = abandon
            self._end()
            if abandon:
                self._abandon()
            self.done.errback(Failure(TransferCancelled()))

    def _abandon(self) -> None:
        """
        Have the server forget a cancelled upload at once: the protocol has
        no request for it, and an upload left open would count against the
        connection's four for ten minutes.  An C{upload_finish} whose size
        and digest do not match is refused with C{upload_incomplete}, and
        "the upload is gone" (PROTOCOL.md section 14); sent after the chunks
        in flight, it is answered after them.
        """
        if self._upload_id is None or self._finishing:
            return
        self._finishing = True
        d = self._request("upload_finish", upload_id=self._upload_id, sha256="0" * 64)
        d.addCallbacks(self._abandoned, lambda failure: failure.trap(ChatError, Disconnected))
        d.addErrback(lambda failure: self.log.failure("Abandoning an upload failed", failure))

    def _abandoned(self, reply: Payload) -> None:
        # Every byte had arrived and the digest matched nothing: not
        # possible in practice; a stored file no message carries is swept
        # by the server.
        self.log.info("A cancelled upload was stored anyway")

    def _ready(self, reply: Payload) -> None:
        if self._over:
            if self._cancelled and self._upload_id is None:
                self._upload_id = str(reply["upload_id"])
                self._abandon()
            return
        self._upload_id = str(reply["upload_id"])
        self._chunk = max(1, min(CHUNK_SIZE, int(reply.get("chunk_size") or CHUNK_SIZE)))
        self._fill_window()

    def _fill_window(self) -> None:
        while (
            not self._over
            and not self._backing_off
            and self._in_flight < WINDOW
            and self._next_offset < self.size
        ):
            offset = self._next_offset
            assert self._file is not None
            try:
                data = self._file.read(min(self._chunk, self.size - offset))
            except OSError as e:
                self._fail(TransferFailed(texts.file_unreadable(self.name, e.strerror or str(e))))
                return
            if not data:
                self._fail(TransferFailed(texts.file_unreadable(self.name, texts.FILE_SHRANK)))
                return
            self._unacknowledged[offset] = data
            self._next_offset += len(data)
            self._in_flight += 1
            d = self._request(
                "upload_chunk",
                upload_id=self._upload_id,
                offset=offset,
                data=base64.b64encode(data).decode("ascii"),
            )
            d.addCallbacks(
                self._acknowledged,
                self._chunk_refused,
                callbackArgs=(offset,),
                errbackArgs=(offset,),
            ).addErrback(self._broken)

    def _acknowledged(self, reply: Payload, offset: int) -> None:
        if self._over:
            return
        self._in_flight -= 1
        data = self._unacknowledged.pop(offset)
        self._hash.update(data)
        self.sent = offset + len(data)
        if self._progress is not None:
            self._progress(self.sent, self.size)
        if self._backing_off:
            self._back_off()
        elif self._next_offset < self.size:
            self._fill_window()
        elif self._in_flight == 0:
            self._close_file()
            self._finishing = True
            d = self._request(
                "upload_finish", upload_id=self._upload_id, sha256=self._hash.hexdigest()
            )
            d.addCallbacks(self._stored, self._refused).addErrback(self._broken)

    def _chunk_refused(self, failure: Failure, offset: int) -> None:
        if self._over:
            return
        self._in_flight -= 1
        self._unacknowledged.pop(offset, None)
        if failure.check(ChatError) and self._clock is not None:
            if self._backing_off or _rate_limited(failure):
                # The server kept what it had: the chunks after this one,
                # in flight, are refused too (their offsets do not follow).
                self._backing_off = True
                self._back_off()
                return
        self._refused(failure)

    def _back_off(self) -> None:
        """
        Once every chunk in flight is answered, wait, then send again from
        the bytes the server has.
        """
        if self._in_flight == 0:
            self._unacknowledged.clear()
            assert self._clock is not None
            self._resume = self._clock.callLater(RETRY_PAUSE, self._go_on)

    def _go_on(self) -> None:
        self._resume = None
        if self._over:
            return
        assert self._file is not None
        self._backing_off = False
        try:
            self._file.seek(self.sent)
        except OSError as e:
            self._fail(TransferFailed(texts.file_unreadable(self.name, e.strerror or str(e))))
            return
        self._next_offset = self.sent
        self._fill_window()

    def _stored(self, reply: Payload) -> None:
        if self._over:
            return
        self._end()
        self.done.callback(File.from_payload(reply["file"]))

    def _refused(self, failure: Failure) -> None:
        if self._over:
            return
        if not failure.check(ChatError, Disconnected):
            self.log.failure("An upload failed", failure)
        error = failure.value
        # Gone with the connection, or already gone on the server.
        gone = not isinstance(error, ChatError) or error.code == wire.NO_SUCH_FILE
        self._fail(_failed(failure), abandon=not gone)

    def _broken(self, failure: Failure) -> None:
        """
        Handling a reply raised (a reply without its fields): a bug, or a
        broken server; the upload stops.
        """
        self.log.failure("An upload's reply could not be handled", failure)
        if not self._over:
            self._fail(TransferFailed(texts.FILE_BROKEN_REPLY))

    def _fail(self, error: TransferFailed, abandon: bool = True) -> None:
        """
        Stop, and fail L{done} with C{error}; unless C{abandon} is false,
        have the server forget the upload, which stays open otherwise.
        """
        self._end()
        if abandon:
            self._abandon()
        self.done.errback(Failure(error))

    def _end(self) -> None:
        self._over = True
        self._unacknowledged.clear()
        if self._resume is not None and self._resume.active():
            self._resume.cancel()
        self._resume = None
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
        self,
        request: Request,
        file: File,
        path: str,
        progress: Progress | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param clock: for the pause after C{rate_limited}; without it,
            C{rate_limited} fails the download.
        """
        self.file = file
        self.path = path
        self.partial = path + ".part"
        self.received = 0
        self.done: Deferred[str] = Deferred()
        self._request = request
        self._progress = progress
        self._clock = clock
        self._out: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        # The ranges to ask for again, after rate_limited.
        self._again: list[tuple[int, int]] = []
        self._retry: IDelayedCall | None = None
        self._next_offset = 0
        self._in_flight = 0
        # Chunks that came before one asked earlier: written once in order.
        self._early: dict[int, bytes] = {}
        self._over = False

    @property
    def running(self) -> bool:
        """
        Whether the download is still going.
        """
        return not self._over

    def start(self) -> Deferred[str]:
        """
        Create the partial file and ask for the first chunks.

        @return: L{done}.
        """
        try:
            self._out = open(self.partial, "wb")
        except OSError as e:
            self._end(TransferFailed(texts.file_unwritable(self.path, e.strerror or str(e))))
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

    def _fill_window(self) -> None:
        # The chunks asked for and not yet written stay within the window,
        # so that one slow chunk never makes the others pile up in memory.
        while not self._over and not self._waiting_to_retry():
            if self._again:
                offset, length = self._again.pop(0)
            elif (
                self._next_offset < self.file.size
                and self._next_offset - self.received < WINDOW * CHUNK_SIZE
            ):
                offset = self._next_offset
                length = min(CHUNK_SIZE, self.file.size - offset)
                self._next_offset += length
            else:
                return
            self._in_flight += 1
            d = self._request("download", file_id=self.file.id, offset=offset, length=length)
            d.addCallbacks(
                self._arrived,
                self._refused,
                callbackArgs=(offset, length),
                errbackArgs=(offset, length),
            ).addErrback(self._broken)

    def _waiting_to_retry(self) -> bool:
        return self._retry is not None and self._retry.active()

    def _arrived(self, reply: Payload, offset: int, length: int) -> None:
        if self._over:
            return
        self._in_flight -= 1
        try:
            data = base64.b64decode(str(reply["data"]), validate=True)
        except (KeyError, binascii.Error):
            data = b""
        if reply.get("offset", offset) != offset or len(data) != length:
            self._end(TransferFailed(texts.FILE_BROKEN_REPLY))
            return
        self._early[offset] = data
        try:
            self._write_in_order()
        except OSError as e:
            self._end(TransferFailed(texts.file_unwritable(self.path, e.strerror or str(e))))
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
            self._end(TransferFailed(texts.FILE_CORRUPT))
            return
        try:
            os.replace(self.partial, self.path)
        except OSError as e:
            self._end(TransferFailed(texts.file_unwritable(self.path, e.strerror or str(e))))
            return
        self._over = True
        self.done.callback(self.path)

    def _refused(self, failure: Failure, offset: int, length: int) -> None:
        if self._over:
            return
        self._in_flight -= 1
        if _rate_limited(failure) and self._clock is not None:
            # Downloads do not depend on each other: ask for this one again.
            self._again.append((offset, length))
            self._again.sort()
            if not self._waiting_to_retry():
                self._retry = self._clock.callLater(RETRY_PAUSE, self._fill_window)
            return
        if not failure.check(ChatError, Disconnected):
            self.log.failure("A download failed", failure)
        self._end(_failed(failure))

    def _broken(self, failure: Failure) -> None:
        """
        Handling a reply raised: a bug, or a broken server; the download
        stops.
        """
        self.log.failure("A download's reply could not be handled", failure)
        if not self._over:
            self._end(TransferFailed(texts.FILE_BROKEN_REPLY))

    def _end(self, error: TransferFailed | None) -> None:
        """
        Stop, remove the partial file, and fail L{done}: with C{error}, or
        L{TransferCancelled} if L{None}.
        """
        self._over = True
        self._early.clear()
        self._again.clear()
        if self._waiting_to_retry():
            assert self._retry is not None
            self._retry.cancel()
        if self._out is not None:
            self._out.close()
            self._out = None
        try:
            os.remove(self.partial)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warn("Cannot remove {path}: {e}", path=self.partial, e=e)
        self.done.errback(Failure(TransferCancelled() if error is None else error))


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
    Downloaded files on disk, named by their SHA-256 (checked as they
    arrive): a file whose content is there already, or on its way, is not
    fetched again, whatever its file id.  After each download the cache is
    cut back to C{limit} bytes, the files least recently used first (each
    fetch that finds its file held marks it used).
    """

    log = Logger()

    def __init__(
        self,
        request: Request,
        directory: str | None = None,
        clock: IReactorTime | None = None,
        limit: int = CACHE_LIMIT,
    ) -> None:
        """
        @param directory: where the files go (created when needed); by
            default L{default_cache_directory}.
        @param clock: for the pause after C{rate_limited}.
        @param limit: the bytes kept at most.
        """
        self.directory = directory or default_cache_directory()
        self.limit = limit
        self._request = request
        self._clock = clock
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
        @param progress: told how far the download got, if one starts.
        @return: fires with the path of C{file}'s content, downloaded first
            unless held already; fails with L{TransferFailed}.
        """
        path = self.cached(file)
        if path is not None:
            try:
                os.utime(path)
            except OSError:
                pass
            return succeed(path)
        waiter: Deferred[str] = Deferred()
        running = self._fetching.get(file.sha256)
        if running is not None:
            running[1].append(waiter)
            return waiter
        try:
            path = self.path_for(file)
            os.makedirs(self.directory, exist_ok=True)
        except ValueError:
            return fail(TransferFailed(texts.FILE_BROKEN_REPLY))
        except OSError as e:
            return fail(TransferFailed(texts.file_unwritable(self.directory, e.strerror or str(e))))
        download = Download(self._request, file, path, progress, self._clock)
        self._fetching[file.sha256] = (download, [waiter])
        download.start().addBoth(self._fetched, file.sha256)
        return waiter

    def cancel_all(self) -> None:
        """
        Stop every download running (the session ended); their waiters
        fail with L{TransferCancelled}.
        """
        for download, _ in list(self._fetching.values()):
            download.cancel()

    def _fetched(self, result: str | Failure, digest: str) -> None:
        _, waiters = self._fetching.pop(digest)
        if not isinstance(result, Failure):
            self._trim(keep=result)
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _trim(self, keep: str) -> None:
        """
        Remove the files least recently used until the cache holds no more
        than L{limit} bytes, never C{keep} (the file just fetched).
        """
        held: list[tuple[float, int, str]] = []
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if _DIGEST.fullmatch(entry.name) and entry.is_file():
                        status = entry.stat()
                        held.append((status.st_mtime, status.st_size, entry.path))
        except OSError as e:
            self.log.warn("Cannot list {directory}: {e}", directory=self.directory, e=e)
            return
        total = sum(size for _, size, _ in held)
        for _, size, path in sorted(held):
            if total <= self.limit:
                return
            if path == keep:
                continue
            try:
                os.remove(path)
            except OSError as e:
                self.log.warn("Cannot remove {path}: {e}", path=path, e=e)
                continue
            total -= size
