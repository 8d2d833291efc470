"""
Files on the synchronous harness (PROTOCOL.md section 14): the expiry of
an upload, the sweep of the files folder, and the folder itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chatd import requests
from chatd.files import SHARED_GRACE, UNSENT_LIFETIME, UPLOAD_TIMEOUT, Folder, Transfers
from tests.postgres import on_postgresql
from tests.support import FIXED_NOW, FakeSession, ServerHarness


def b64(data: bytes) -> str:
    """
    @return: the padded standard base64 of C{data}.
    """
    return base64.b64encode(data).decode("ascii")


class ExpiryTests(SynchronousTestCase):
    """
    An upload that gets no chunk for 10 minutes is dropped.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        self.ncr = self.harness.user("ncr")
        self.folder = self.harness.assembly.transfers.folder.path

    def start(self, size: int = 10) -> str:
        reply = self.harness.call(self.ncr, "upload_start", name="a.bin", size=size)
        upload_id: str = reply["upload_id"]
        return upload_id

    def chunk(self, upload_id: str, offset: int, data: bytes) -> dict:
        reply: dict = self.harness.call(
            self.ncr, "upload_chunk", upload_id=upload_id, offset=offset, data=b64(data)
        )
        return reply

    def test_no_chunk_for_ten_minutes(self) -> None:
        """
        Ten minutes after its last chunk an upload is no_such_file and its
        part is removed.
        """
        upload_id = self.start()
        self.chunk(upload_id, 0, b"abc")
        part = os.path.join(self.folder, upload_id + ".part")
        self.assertTrue(os.path.exists(part))
        self.harness.reactor.advance(UPLOAD_TIMEOUT)
        self.assertFalse(os.path.exists(part))
        self.assertEqual(
            self.harness.error(
                self.ncr, "upload_chunk", upload_id=upload_id, offset=3, data=b64(b"def")
            ),
            "no_such_file",
        )
        self.assertEqual(
            self.harness.error(self.ncr, "upload_finish", upload_id=upload_id, sha256="0" * 64),
            "no_such_file",
        )

    def test_start_without_chunk_expires(self) -> None:
        """
        An upload that never got a chunk expires ten minutes after its start.
        """
        upload_id = self.start()
        self.harness.reactor.advance(UPLOAD_TIMEOUT)
        self.assertEqual(os.listdir(self.folder), [])
        self.assertEqual(
            self.harness.error(
                self.ncr, "upload_chunk", upload_id=upload_id, offset=0, data=b64(b"abc")
            ),
            "no_such_file",
        )

    def test_each_chunk_restarts_the_timer(self) -> None:
        """
        A chunk just before the ten minutes are up gives the upload ten
        minutes more, and it finishes.
        """
        data = b"0123456789"
        upload_id = self.start(len(data))
        self.harness.reactor.advance(UPLOAD_TIMEOUT - 1)
        self.chunk(upload_id, 0, data[:5])
        self.harness.reactor.advance(UPLOAD_TIMEOUT - 1)
        self.assertEqual(self.chunk(upload_id, 5, data[5:])["received"], 10)
        self.harness.reactor.advance(UPLOAD_TIMEOUT - 1)
        reply = self.harness.call(
            self.ncr, "upload_finish", upload_id=upload_id, sha256=hashlib.sha256(data).hexdigest()
        )
        self.assertEqual(reply["type"], "file_stored")
        self.harness.reactor.advance(UPLOAD_TIMEOUT)
        self.assertEqual(os.listdir(self.folder), [hashlib.sha256(data).hexdigest()])

    def test_expired_upload_frees_its_slot(self) -> None:
        """
        Expired uploads no longer count against the 4 open uploads.
        """
        for _ in range(4):
            self.start()
        self.assertEqual(
            self.harness.error(self.ncr, "upload_start", name="a.bin", size=1), "not_allowed"
        )
        self.harness.reactor.advance(UPLOAD_TIMEOUT)
        self.start()


class SweepTests(SynchronousTestCase):
    """
    The sweep removes what nothing needs any more.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        self.transfers = self.harness.assembly.transfers
        self.folder = self.transfers.folder.path

    def store(self, session: FakeSession, data: bytes) -> dict:
        ready = self.harness.call(session, "upload_start", name="a.bin", size=len(data))
        self.harness.call(
            session, "upload_chunk", upload_id=ready["upload_id"], offset=0, data=b64(data)
        )
        reply = self.harness.call(
            session,
            "upload_finish",
            upload_id=ready["upload_id"],
            sha256=hashlib.sha256(data).hexdigest(),
        )
        file: dict = reply["file"]
        return file

    def sweep(self) -> int:
        removed: int = self.successResultOf(self.transfers.sweep())
        return removed

    def test_unsent_upload_expires_after_a_day(self) -> None:
        """
        A finished upload no message carried is removed, row and content, by
        the first sweep more than a day after it; a sent one stays.
        """
        ncr, lzy = self.harness.user("ncr"), self.harness.user("lzy")
        self.harness.friends(ncr, lzy)
        unsent = self.store(ncr, b"never sent")
        sent = self.store(ncr, b"sent")
        self.harness.call(
            ncr, "send_message", target_type=0, target_id=lzy.user_id, file_id=sent["id"]
        )
        self.harness.reactor.advance(FIXED_NOW + UNSENT_LIFETIME - 10)
        self.assertEqual(self.sweep(), 0)
        self.assertEqual(
            self.harness.call(ncr, "download", file_id=unsent["id"])["type"], "file_chunk"
        )
        self.harness.reactor.advance(20)
        self.assertEqual(self.sweep(), 1)
        self.assertEqual(os.listdir(self.folder), [sent["sha256"]])
        self.assertEqual(self.harness.error(ncr, "download", file_id=unsent["id"]), "no_such_file")
        self.assertEqual(
            self.harness.call(lzy, "download", file_id=sent["id"])["type"], "file_chunk"
        )

    def test_sweep_during_finish_keeps_the_part(self) -> None:
        """
        A sweep that started before an upload_finish and lists the uploads
        in progress while the finish waits its turn keeps that upload's
        part: the finish stores the file.
        """
        ncr = self.harness.user("ncr")
        data = b"racing the sweep"
        ready = self.harness.call(ncr, "upload_start", name="a.bin", size=len(data))
        self.harness.call(
            ncr, "upload_chunk", upload_id=ready["upload_id"], offset=0, data=b64(data)
        )
        digests: Deferred[set[str]] = Deferred()
        store = self.harness.store
        self.patch(store, "stored_digests", lambda: digests)
        sweeping = Deferred.fromCoroutine(self.transfers.sweep())
        finishing = self.harness.server.dispatch(
            ncr,
            {
                "type": "upload_finish",
                "upload_id": ready["upload_id"],
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        self.assertNoResult(finishing)
        digests.callback(set())
        self.successResultOf(sweeping)
        reply = self.successResultOf(finishing)
        self.assertEqual(reply["type"], "file_stored")
        self.assertEqual(os.listdir(self.folder), [hashlib.sha256(data).hexdigest()])

    def test_sweep_keeps_parts_of_live_uploads(self) -> None:
        """
        The sweep keeps the part of an upload in progress and removes a
        stray part and unnamed content.
        """
        ncr = self.harness.user("ncr")
        ready = self.harness.call(ncr, "upload_start", name="a.bin", size=10)
        self.harness.call(
            ncr, "upload_chunk", upload_id=ready["upload_id"], offset=0, data=b64(b"ab")
        )
        for name in ("stray.part", "0" * 64):
            with open(os.path.join(self.folder, name), "wb") as f:
                f.write(b"left over")
        self.assertEqual(self.sweep(), 2)
        self.assertEqual(os.listdir(self.folder), [ready["upload_id"] + ".part"])


class FolderTests(SynchronousTestCase):
    """
    The files folder on its own.
    """

    def test_prepare_removes_parts(self) -> None:
        """
        Preparing the folder makes it if need be, and removes the parts a
        crash left but keeps content.
        """
        folder = Folder(self.mktemp())
        folder.prepare()
        self.assertEqual(os.listdir(folder.path), [])
        for name in ("x.part", "a" * 64):
            with open(os.path.join(folder.path, name), "wb") as f:
                f.write(b"1")
        folder.prepare()
        self.assertEqual(os.listdir(folder.path), ["a" * 64])

    def test_shared_folder(self) -> None:
        """
        A folder the processes of a deployment share: preparing it keeps
        the parts (another process's uploads, maybe), and a sweep removes
        only what was left untouched for L{SHARED_GRACE}.
        """
        folder = Folder(self.mktemp(), shared=True)
        folder.prepare()
        names = ["fresh.part", "b" * 64, "old.part", "c" * 64]
        for name in names:
            with open(os.path.join(folder.path, name), "wb") as f:
                f.write(b"1")
        folder.prepare()
        self.assertEqual(sorted(os.listdir(folder.path)), sorted(names))
        long_ago = time.time() - SHARED_GRACE - 1
        for name in names[2:]:
            os.utime(os.path.join(folder.path, name), (long_ago, long_ago))
        self.assertEqual(folder.remove_except(set(), set()), 2)
        self.assertEqual(sorted(os.listdir(folder.path)), sorted(names[:2]))

    def test_place_keeps_existing_content(self) -> None:
        """
        Placing a part whose content is stored already drops the part and
        keeps the content.
        """
        folder = Folder(self.mktemp())
        folder.prepare()
        digest = hashlib.sha256(b"same").hexdigest()
        for upload_id in ("one", "two"):
            fd = folder.open_part(upload_id)
            Folder.append(fd, hashlib.sha256(), b"same")
            folder.place(fd, upload_id, digest)
        self.assertEqual(os.listdir(folder.path), [digest])
        self.assertEqual(folder.read(digest, 1, 10), b"ame")


class HeldThreads:
    """
    A C{run_in_thread} that holds each blocking call until the test lets it
    run: the test picks the order in which a real thread pool's workers
    might run them.
    """

    def __init__(self) -> None:
        self.waiting: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append((f, args, d))
        return d

    def names(self) -> list[str]:
        """
        @return: the names of the calls waiting, in the order they came.
        """
        return [f.__name__ for f, _, _ in self.waiting]

    def run(self, name: str) -> None:
        """
        Run the first call waiting of the function C{name}, and fire its
        Deferred with what it returned or raised.
        """
        index = self.names().index(name)
        f, args, d = self.waiting.pop(index)
        try:
            result = f(*args)
        except BaseException:
            d.errback()
        else:
            d.callback(result)

    def run_all(self) -> None:
        """
        Run every call still waiting, in the order they came.
        """
        while self.waiting:
            self.run(self.names()[0])


class ThreadOrderTests(SynchronousTestCase):
    """
    The work on the files folder runs in threads, which may run in any
    order: what one request does in a thread must not undo another's.
    """

    def setUp(self) -> None:
        self.harness = ServerHarness(self)
        self.threads = HeldThreads()
        self.folder = Folder(self.mktemp())
        self.transfers = Transfers(
            self.harness.store,
            self.harness.directory,
            self.folder,
            self.harness.reactor,
            run_in_thread=self.threads,
        )
        started = Deferred.fromCoroutine(self.transfers.start())
        self.threads.run("prepare")
        self.successResultOf(started)
        self.addCleanup(self.threads.run_all)
        self.addCleanup(self.transfers.stop)

    def start(self, session: FakeSession, size: int) -> str:
        """
        @return: the id of a new upload of C{session}, its part opened.
        """
        d = Deferred.fromCoroutine(
            self.transfers.upload_start(session, requests.UploadStart("a.bin", size, "a/b"))
        )
        self.threads.run("open_part")
        upload_id: str = self.successResultOf(d)["upload_id"]
        return upload_id

    def test_disconnect_while_a_chunk_is_written(self) -> None:
        """
        A connection that closes while its chunk waits for a thread: its
        part is closed only once that write is done, so the chunk's bytes
        land in no other upload (whose part could reuse the descriptor).
        """
        ncr, lzy = self.harness.user("ncr"), self.harness.user("lzy")
        theirs = self.start(ncr, 10)
        chunk = Deferred.fromCoroutine(
            self.transfers.upload_chunk(ncr, requests.UploadChunk(theirs, 0, b"N" * 10))
        )
        outcome: list[object] = []
        chunk.addBoth(outcome.append)
        self.transfers.disconnected(ncr)
        self.assertEqual(self.threads.names(), ["append"])
        self.threads.run("append")
        self.assertTrue(outcome)
        self.assertEqual(self.threads.names(), ["drop_part"])
        self.threads.run("drop_part")
        data = b"L" * 10
        mine = self.start(lzy, len(data))

        d = Deferred.fromCoroutine(
            self.transfers.upload_chunk(lzy, requests.UploadChunk(mine, 0, data))
        )
        self.threads.run("append")
        self.assertEqual(self.successResultOf(d)["received"], 10)
        digest = hashlib.sha256(data).hexdigest()
        d = Deferred.fromCoroutine(
            self.transfers.upload_finish(lzy, requests.UploadFinish(mine, digest))
        )
        self.threads.run("place")
        self.assertEqual(self.successResultOf(d)["type"], "file_stored")
        with open(self.folder.content(digest), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_sweep_while_an_upload_starts(self) -> None:
        """
        A sweep that starts while an upload_start waits for its part to be
        opened waits for the upload to be live, and keeps its part: the
        upload goes on and is stored.
        """
        ncr = self.harness.user("ncr")
        data = b"racing the sweep"
        starting = Deferred.fromCoroutine(
            self.transfers.upload_start(ncr, requests.UploadStart("a.bin", len(data), "a/b"))
        )
        sweeping = Deferred.fromCoroutine(self.transfers.sweep())
        self.assertEqual(self.threads.names(), ["open_part"])
        self.threads.run("open_part")
        upload_id = self.successResultOf(starting)["upload_id"]
        self.assertEqual(self.threads.names(), ["remove_except"])
        self.threads.run("remove_except")
        self.successResultOf(sweeping)
        self.assertEqual(os.listdir(self.folder.path), [upload_id + ".part"])

        d = Deferred.fromCoroutine(
            self.transfers.upload_chunk(ncr, requests.UploadChunk(upload_id, 0, data))
        )
        self.threads.run("append")
        self.successResultOf(d)
        digest = hashlib.sha256(data).hexdigest()
        d = Deferred.fromCoroutine(
            self.transfers.upload_finish(ncr, requests.UploadFinish(upload_id, digest))
        )
        self.threads.run("place")
        self.assertEqual(self.successResultOf(d)["type"], "file_stored")


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    ExpiryTests,
    SweepTests,
    ThreadOrderTests,
)
