"""
Files and images (PROTOCOL.md section 14): uploads, downloads, and the
folder that holds their content.

The content of each file is stored once, named by its SHA-256, in the
files folder (C{--files}, by default the database's path with C{.files}
added); the database has a row per upload (L{chatd.store.StoredFile}).  An
upload is written to C{<upload id>.part} in that folder as its chunks
arrive; when it is finished and its digest checked, the part is flushed to
disk, renamed to its digest (or dropped, when that content is there
already) and the folder flushed, and only then is its row committed: a
C{download} reaches nothing half-written, and a stored file survives a
crash intact.

Every read and write of the folder runs in a thread.  A sweep, at start and
then hourly, removes what nothing needs any more: uploads never sent within
a day, content that no row names, and parts left by a crash.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from chatd import requests, wire
from chatd.directory import Directory
from chatd.sessions import Session
from chatd.store import Scope, Store, StoredFile
from chatd.wire import ChatError, Payload
from chatd.writer import utc_stamp

#: Uploads one connection may have open at once.
MAX_OPEN_UPLOADS: Final = 4

#: Seconds an upload waits for its next chunk before it is dropped.
UPLOAD_TIMEOUT: Final = 600.0

#: Seconds a finished upload may wait for a message to carry it.
UNSENT_LIFETIME: Final = 86400.0

#: Seconds between two sweeps of the files folder.
SWEEP_EVERY: Final = 3600.0

#: In a folder shared by the processes of a deployment, how many seconds
#: a file must have been left untouched before a sweep may remove it: the
#: others' uploads in progress are written to at least every
#: L{UPLOAD_TIMEOUT}, and their content is named in the database within
#: moments of its placing.
SHARED_GRACE: Final = UPLOAD_TIMEOUT + 60.0

_PART = ".part"

log = Logger()

#: Runs a blocking call in a thread: C{deferToThread}, or inline in tests.
RunInThread = Callable[..., Deferred[Any]]


@dataclass(frozen=True, slots=True)
class FileLimits:
    """
    The file limits set by the command line.

    @ivar max_upload: the largest file, in bytes (C{--max-upload}).
    @ivar user_quota: the bytes of files one user may have stored
        (C{--user-quota}).
    """

    max_upload: int = 25 * 1024 * 1024
    user_quota: int = 1024 * 1024 * 1024


class Folder:
    """
    The files folder: content named by its SHA-256, and the parts of the
    uploads in progress.  Every method runs in a thread; they block.
    """

    def __init__(self, path: str, shared: bool = False) -> None:
        """
        @param shared: the other processes of a deployment use the folder
            too (L{chatd.cluster}): what they are writing is not this
            process's to remove (see L{SHARED_GRACE}).
        """
        self.path = os.path.abspath(path)
        self.shared = shared

    def content(self, sha256: str) -> str:
        return os.path.join(self.path, sha256)

    def part(self, upload_id: str) -> str:
        return os.path.join(self.path, upload_id + _PART)

    def prepare(self) -> None:
        """
        Make the folder if need be, and remove the parts a crash left.
        """
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        if self.shared:
            # They may be the others' uploads: the sweeps remove them.
            return
        for name in os.listdir(self.path):
            if name.endswith(_PART):
                os.unlink(os.path.join(self.path, name))

    def open_part(self, upload_id: str) -> int:
        return os.open(self.part(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    @staticmethod
    def append(fd: int, digest: Any, data: bytes) -> None:
        os.write(fd, data)
        digest.update(data)

    def drop_part(self, fd: int, upload_id: str) -> None:
        os.close(fd)
        try:
            os.unlink(self.part(upload_id))
        except FileNotFoundError:
            pass

    def place(self, fd: int, upload_id: str, sha256: str) -> None:
        """
        Make the part of C{upload_id} the content C{sha256}, durably: the
        part is flushed, renamed, and the folder flushed.  Content stored
        already is kept, and the part dropped.
        """
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        part, final = self.part(upload_id), self.content(sha256)
        if os.path.exists(final):
            os.unlink(part)
            # Used again: no other process's sweep may take it for
            # forgotten (SHARED_GRACE) before its new row commits.
            os.utime(final)
        else:
            os.rename(part, final)
        self._sync_folder()

    def _sync_folder(self) -> None:
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def read(self, sha256: str, offset: int, length: int) -> bytes:
        """
        @raise FileNotFoundError: the content is gone.
        """
        with open(self.content(sha256), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def remove_except(self, kept: set[str], parts: set[str]) -> int:
        """
        Remove the content not named in C{kept} and the parts of uploads
        not in C{parts}.

        @return: how many files were removed.
        """
        removed = 0
        settled = time.time() - SHARED_GRACE
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(_PART):
                    gone = name[: -len(_PART)] not in parts
                else:
                    gone = name not in kept
                if gone and self.shared and entry.stat().st_mtime > settled:
                    gone = False
                if gone:
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            self._sync_folder()
        return removed

    def size(self) -> int:
        """
        @return: the bytes of everything in the folder.
        """
        with os.scandir(self.path) as entries:
            return sum(entry.stat().st_size for entry in entries if entry.is_file())


@dataclass(slots=True, eq=False)
class Upload:
    """
    An upload in progress, which belongs to the connection that started it.

    @ivar fd: its open part in the files folder.
    @ivar digest: the SHA-256 of what was received so far.
    @ivar timer: drops the upload when no chunk comes for
        L{UPLOAD_TIMEOUT} seconds.
    """

    id: str
    user_id: int
    name: str
    size: int
    mime: str
    fd: int
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    timer: IDelayedCall | None = None
    #: Fires when the write in progress (if any) is done: the part is
    #: closed only after it, so that its descriptor, which the next open
    #: may reuse, is never written to once closed.
    writing: Deferred[None] = field(default_factory=lambda: succeed(None))


def file_object(stored: StoredFile) -> Payload:
    """
    @return: the File object of PROTOCOL.md section 3.
    """
    return {
        "id": stored.id,
        "name": stored.name,
        "size": stored.size,
        "mime": stored.mime,
        "sha256": stored.sha256,
    }


class Transfers:
    """
    The handlers of section 14's requests, the uploads in progress, and the
    sweep of the files folder.
    """

    def __init__(
        self,
        store: Store,
        directory: Directory,
        folder: Folder,
        clock: IReactorTime,
        limits: FileLimits = FileLimits(),
        *,
        run_in_thread: RunInThread = deferToThread,
    ) -> None:
        self._store = store
        self._directory = directory
        self.folder = folder
        self._clock = clock
        self.limits = limits
        self._thread = run_in_thread
        #: connection -> its uploads by id
        self._uploads: dict[Session, dict[str, Upload]] = {}
        # Placing new content and sweeping unnamed content take turns, so
        # that the sweep never removes content whose row is committing.
        self._placing = DeferredLock()
        self._sweeps: IDelayedCall | None = None

    # The folder's life.

    async def start(self) -> None:
        """
        Make the folder and remove what a crash left in it; then sweep it
        every L{SWEEP_EVERY} seconds.
        """
        await self._thread(self.folder.prepare)
        self._sweeps = self._clock.callLater(0, self._sweep_soon)

    def stop(self) -> None:
        """
        Sweep no more, and drop every upload in progress.
        """
        if self._sweeps is not None and self._sweeps.active():
            self._sweeps.cancel()
        self._sweeps = None
        for session in list(self._uploads):
            self.disconnected(session)

    def _sweep_soon(self) -> None:
        d = Deferred.fromCoroutine(self.sweep())
        d.addErrback(lambda failure: log.failure("Sweeping the files folder failed", failure))
        d.addBoth(self._sweep_later)

    def _sweep_later(self, ignored: object) -> None:
        if self._sweeps is not None:
            self._sweeps = self._clock.callLater(SWEEP_EVERY, self._sweep_soon)

    async def sweep(self) -> int:
        """
        Remove the uploads never sent within L{UNSENT_LIFETIME}, then the
        content no row names and the parts of no upload in progress.

        @return: how many files were removed from the folder.
        """
        await self._store.expire_unsent_files(utc_stamp(self._clock.seconds() - UNSENT_LIFETIME))
        await self._placing.acquire()
        try:
            kept = await self._store.stored_digests()
            parts = {upload_id for uploads in self._uploads.values() for upload_id in uploads}
            removed: int = await self._thread(self.folder.remove_except, kept, parts)
        finally:
            self._placing.release()
        if removed:
            log.info("Removed {count} files nothing needs any more", count=removed)
        return removed

    def disconnected(self, session: Session) -> None:
        """
        A connection closed: its uploads are dropped.
        """
        for upload in list(self._uploads.get(session, {}).values()):
            self._drop(session, upload)

    def _drop(self, session: Session, upload: Upload) -> None:
        uploads = self._uploads.get(session, {})
        if uploads.pop(upload.id, None) is None:
            return
        if not uploads:
            self._uploads.pop(session, None)
        if upload.timer is not None and upload.timer.active():
            upload.timer.cancel()
        d = upload.writing.addCallback(
            lambda _: self._thread(self.folder.drop_part, upload.fd, upload.id)
        )
        d.addErrback(lambda failure: log.failure("Dropping an upload failed", failure))

    def _upload(self, session: Session, upload_id: str) -> Upload:
        upload = self._uploads.get(session, {}).get(upload_id)
        if upload is None:
            raise ChatError(wire.NO_SUCH_FILE, "There is no such upload (it may have expired).")
        return upload

    # The requests.

    async def upload_start(self, session: Session, request: requests.UploadStart) -> Payload:
        """
        Open an upload: the file's size must fit the limit and the user's
        quota, counting their other uploads in progress.
        """
        user_id = session.user_id
        assert user_id is not None
        if request.size > self.limits.max_upload:
            raise ChatError(wire.FILE_TOO_LARGE)
        mine = self._uploads.get(session, {})
        if len(mine) >= MAX_OPEN_UPLOADS:
            raise ChatError(wire.NOT_ALLOWED, f"At most {MAX_OPEN_UPLOADS} uploads at once.")
        stored = await self._store.file_usage(user_id)
        pending = sum(
            upload.size
            for uploads in self._uploads.values()
            for upload in uploads.values()
            if upload.user_id == user_id
        )
        if stored + pending + request.size > self.limits.user_quota:
            raise ChatError(wire.QUOTA_EXCEEDED)
        upload_id = secrets.token_urlsafe(16)
        # A sweep lists the live uploads, then the folder: the part is made
        # and the upload made live in one turn of the lock.
        await self._placing.acquire()
        try:
            fd = await self._thread(self.folder.open_part, upload_id)
            upload = Upload(upload_id, user_id, request.name, request.size, request.mime, fd)
            if not session.connected:
                self._thread(self.folder.drop_part, fd, upload_id)
                raise ChatError(wire.NO_SUCH_FILE)
            self._uploads.setdefault(session, {})[upload_id] = upload
        finally:
            self._placing.release()
        upload.timer = self._clock.callLater(UPLOAD_TIMEOUT, self._drop, session, upload)
        return {"type": "upload_ready", "upload_id": upload_id, "chunk_size": requests.CHUNK_SIZE}

    async def upload_chunk(self, session: Session, request: requests.UploadChunk) -> Payload:
        """
        Append the next chunk of an upload.
        """
        upload = self._upload(session, request.upload_id)
        if request.offset != upload.received:
            raise ChatError(
                wire.INVALID_FIELD, f"Field 'offset' must be {upload.received}, the bytes so far."
            )
        if upload.received + len(request.data) > upload.size:
            raise ChatError(wire.INVALID_FIELD, "The chunk goes past the size of the file.")
        # Counted before the write, so that a chunk sent meanwhile (the
        # client's next, at the next offset) is checked against it.
        upload.received += len(request.data)
        written = self._thread(self.folder.append, upload.fd, upload.digest, request.data)
        done: Deferred[None] = Deferred()
        upload.writing = done
        try:
            await written
        except BaseException:
            done.callback(None)
            self._drop(session, upload)
            raise
        done.callback(None)
        if upload.timer is not None and upload.timer.active():
            upload.timer.reset(UPLOAD_TIMEOUT)
        return {"type": "upload_progress", "upload_id": upload.id, "received": upload.received}

    async def upload_finish(self, session: Session, request: requests.UploadFinish) -> Payload:
        """
        Check the upload's size and digest, store its content durably, then
        its row.
        """
        upload = self._upload(session, request.upload_id)
        if upload.received != upload.size or upload.digest.hexdigest() != request.sha256:
            self._drop(session, upload)
            raise ChatError(wire.UPLOAD_INCOMPLETE)
        if upload.timer is not None and upload.timer.active():
            upload.timer.cancel()
        file_id = secrets.token_urlsafe(16)
        await self._placing.acquire()
        try:
            # Still an upload in progress until now: a sweep that began
            # before the lock was taken keeps its part.  The connection may
            # have closed meanwhile, and dropped it.
            uploads = self._uploads.get(session, {})
            if uploads.pop(upload.id, None) is None:
                raise ChatError(wire.NO_SUCH_FILE)
            if not uploads:
                del self._uploads[session]
            await self._thread(self.folder.place, upload.fd, upload.id, request.sha256)
            stored = await self._store.add_file(
                file_id, upload.user_id, upload.name, upload.size, upload.mime, request.sha256
            )
        finally:
            self._placing.release()
        log.info(
            "User {user_id} stored a file of {size} bytes", user_id=upload.user_id, size=upload.size
        )
        return {"type": "file_stored", "file": file_object(stored)}

    async def download(self, session: Session, request: requests.Download) -> Payload:
        """
        Read a chunk of a file the user may read: theirs, or carried by a
        message they can read.
        """
        user_id = session.user_id
        assert user_id is not None
        stored = await self._store.readable_file(request.file_id, self._scope(user_id))
        if stored is None:
            raise ChatError(wire.NO_SUCH_FILE)
        if request.offset >= stored.size:
            raise ChatError(
                wire.INVALID_FIELD, f"Field 'offset' must be below the size, {stored.size}."
            )
        length = min(request.length, stored.size - request.offset)
        try:
            data = await self._thread(self.folder.read, stored.sha256, request.offset, length)
        except FileNotFoundError:
            raise ChatError(wire.NO_SUCH_FILE) from None
        return {
            "type": "file_chunk",
            "file_id": stored.id,
            "offset": request.offset,
            "data": base64.b64encode(data).decode("ascii"),
            "eof": request.offset + len(data) >= stored.size,
        }

    def _scope(self, user_id: int) -> Scope:
        directory = self._directory
        rooms = {
            room_id: directory.rooms[room_id].members[user_id]
            for room_id in directory.rooms_of(user_id)
        }
        return Scope(user_id, frozenset(directory.friends(user_id)), rooms)

    def folder_size(self) -> Deferred[int]:
        """
        @return: the bytes the files folder holds.
        """
        return self._thread(self.folder.size)
