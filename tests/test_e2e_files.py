"""
End to end over loopback TCP for PROTOCOL.md section 14 (files and
images), the transfer rate of section 8 and the removal of files no message
carries any more (section 10).

Users are registered in a fixed order in every test, so their ids are known:
ann is 1, bob is 2 and cat is 3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.trial.unittest import TestCase

from chatd import assembly, wire
from chatd.assembly import Assembly
from chatd.database import is_postgresql, make_pool
from chatd.files import FileLimits
from chatd.passwords import Passwords, cheap_hasher
from chatd.protocol import Limits
from chatd.requests import CHUNK_SIZE
from tests.postgres import on_postgresql
from tests.support import WireClient, database_for, logged_in, wire_client
from tests.test_e2e import befriend
from tests.test_process import start_process
from tests.test_store import query

ANN, BOB, CAT = 1, 2, 3
PRIVATE, ROOM = 0, 1


def b64(data: bytes) -> str:
    """
    @return: the padded standard base64 of C{data}, as a chunk's C{data}.
    """
    return base64.b64encode(data).decode("ascii")


def sha256(data: bytes) -> str:
    """
    @return: the SHA-256 of C{data} as 64 lower-case hex digits.
    """
    return hashlib.sha256(data).hexdigest()


def content(size: int, seed: int = 0) -> bytes:
    """
    @return: C{size} random bytes, the same for the same C{seed}.
    """
    return random.Random(seed).randbytes(size)


def chunks(data: bytes, size: int = CHUNK_SIZE) -> list[tuple[int, bytes]]:
    """
    @return: the offsets and bytes of C{data} cut into chunks of C{size}.
    """
    return [(offset, data[offset : offset + size]) for offset in range(0, len(data), size)]


class SteppedReactor:
    """
    The global reactor, whose clock a test moves forward: the connections'
    rate buckets read C{seconds()}, so that time passes for them when the
    test says so.  Everything else (delayed calls, threads, sockets) is the
    real reactor's.

    @ivar ahead: the seconds this clock is ahead of the real one.
    """

    def __init__(self) -> None:
        self._reactor = reactor
        self.ahead = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def seconds(self) -> float:
        return float(self._reactor.seconds()) + self.ahead


class FilesServer:
    """
    A chatd server on a loopback port of the global reactor, with the parts
    it is made of.

    @ivar db: the path of its database.
    @ivar folder: its files folder.
    @ivar clock: its clock, which the test may move forward.
    """

    def __init__(
        self, assembled: Assembly, port: int, db: str, folder: str, clock: SteppedReactor
    ) -> None:
        self.assembly = assembled
        self.port = port
        self.db = db
        self.folder = folder
        self.clock = clock

    def on_disk(self) -> list[str]:
        """
        @return: the names in the files folder, sorted.
        """
        return sorted(os.listdir(self.folder))

    def parts(self) -> list[str]:
        """
        @return: the parts of uploads in the files folder.
        """
        return [name for name in self.on_disk() if name.endswith(".part")]

    def rows(self) -> list[tuple[str, int, str, int]]:
        """
        @return: the id, uploader, SHA-256 and C{sent} flag of every row of
            the C{files} table, read with a connection of the test's own.
        """
        return file_rows(self.db)

    async def sweep(self) -> int:
        """
        Sweep the files folder now, as the hourly sweep does.

        @return: how many files were removed.
        """
        return await self.assembly.transfers.sweep()


def file_rows(db: str) -> list[tuple[str, int, str, int]]:
    """
    @return: the id, uploader, SHA-256 and C{sent} flag of every row of the
        C{files} table of the database C{db}.
    """
    return query(db, "SELECT id, uploader_id, sha256, sent FROM files ORDER BY created_at, id")


async def start_files_server(
    testcase: TestCase,
    limits: Limits | None = None,
    file_limits: FileLimits | None = None,
    *,
    inline_files: bool = False,
) -> FilesServer:
    """
    Start a chatd server (L{chatd.assembly}) on a new database in the
    test's temporary directory, with cheap password hashing and a clock the
    test moves forward; it stops when the test ends.

    @param inline_files: run the work on the files folder at once on the
        reactor thread instead of in threads, so that what a connection's
        close drops is dropped when the server has seen it close.
    """
    clock = SteppedReactor()
    db = database_for(testcase)
    if not is_postgresql(db):
        db = os.path.abspath(db)
    folder = os.path.abspath(testcase.mktemp()) if is_postgresql(db) else db + ".files"
    limits = limits or Limits()
    file_limits = file_limits or FileLimits()
    if inline_files:
        assembled = await assembly.assemble(
            make_pool(db, clock, 1),  # type: ignore[arg-type]
            make_pool(db, clock, 2),  # type: ignore[arg-type]
            Passwords(clock, cheap_hasher()),  # type: ignore[arg-type]
            clock,
            limits,
            files_folder=folder,
            file_limits=file_limits,
            run_in_thread=maybeDeferred,
        )
    else:
        assembled = await assembly.open(
            db,
            clock,
            limits,
            insecure_fast_hashes=True,
            files_folder=folder,
            file_limits=file_limits,
        )
    listening = reactor.listenTCP(0, assembled.factory, interface="127.0.0.1")

    async def stop() -> None:
        await listening.stopListening()
        await assembled.close()

    testcase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return FilesServer(assembled, listening.getHost().port, db, folder, clock)


async def start_upload(client: WireClient, data: bytes, **fields: Any) -> str:
    """
    Start an upload of C{data} (named C{blob.bin} unless C{fields} say).

    @return: its C{upload_id}.
    """
    fields.setdefault("name", "blob.bin")
    ready = await client.request("upload_start", size=len(data), **fields)
    assert ready["type"] == "upload_ready", ready
    upload_id: str = ready["upload_id"]
    return upload_id


async def send_chunks(
    client: WireClient, upload_id: str, data: bytes, start: int = 0
) -> list[wire.Payload]:
    """
    Send C{data} from C{start} on in chunks of C{CHUNK_SIZE}, all at once
    (the replies come in order).

    @return: the replies.
    """
    pending = [
        client.request("upload_chunk", upload_id=upload_id, offset=start + offset, data=b64(piece))
        for offset, piece in chunks(data)
    ]
    return [await d for d in pending]


async def upload(client: WireClient, data: bytes, **fields: Any) -> wire.Payload:
    """
    Upload C{data} whole.

    @return: the File object of C{file_stored}.
    """
    upload_id = await start_upload(client, data, **fields)
    for reply in await send_chunks(client, upload_id, data):
        assert reply["type"] == "upload_progress", reply
    stored = await client.request("upload_finish", upload_id=upload_id, sha256=sha256(data))
    assert stored["type"] == "file_stored", stored
    file: wire.Payload = stored["file"]
    return file


async def download(client: WireClient, file_id: str) -> bytes:
    """
    @return: the whole file C{file_id}, downloaded chunk after chunk with
        the default length.
    """
    data = b""
    while True:
        chunk = await client.request("download", file_id=file_id, offset=len(data))
        assert chunk["type"] == "file_chunk", chunk
        assert chunk["offset"] == len(data), chunk
        data += base64.b64decode(chunk["data"])
        if chunk["eof"]:
            return data


async def send_file(
    client: WireClient, target_type: int, target_id: int, file_id: str, **fields: Any
) -> wire.Payload:
    """
    @return: the Message that C{client} sent with the file C{file_id}.
    """
    reply = await client.request(
        "send_message", target_type=target_type, target_id=target_id, file_id=file_id, **fields
    )
    assert reply["type"] == "on_new_message", reply
    message: wire.Payload = reply["message"]
    return message


async def history(client: WireClient, target_type: int, target_id: int) -> list[wire.Payload]:
    """
    @return: the newest messages of a conversation, oldest first.
    """
    page = await client.request("history", target_type=target_type, target_id=target_id)
    assert page["type"] == "history", page
    messages: list[wire.Payload] = page["messages"]
    return messages


async def drain(client: WireClient) -> None:
    """
    Forget every push C{client} received so far: a ping's reply comes after
    every push the server wrote to this connection before it.
    """
    reply = await client.request("ping")
    assert reply["type"] == "pong", reply
    client.pending_pushes()


class Base(TestCase):
    """
    Set-ups and checks the tests share.
    """

    async def users(self, *names: str, **server: Any) -> tuple[FilesServer, list[WireClient]]:
        """
        @param server: what L{start_files_server} is given.
        @return: a running server and logged-in clients of C{names}, in that
            order (so with the ids 1, 2, ...).
        """
        running = await start_files_server(self, **server)
        clients = [await logged_in(self, running.port, name) for name in names]
        return running, clients

    async def friends(self, a: WireClient, b: WireClient, b_name: str) -> None:
        """
        Make C{a} and C{b} friends, and forget their pushes.
        """
        await befriend(a, b, b_name)
        await drain(a)
        await drain(b)

    async def room(self, owner: WireClient, *members: WireClient) -> int:
        """
        Create room1 by C{owner}; C{members} join it; every client's pushes
        so far are forgotten.

        @return: the room's id.
        """
        created = await owner.request("create_room", name="room1")
        assert created["type"] == "create_successful", created
        for member in members:
            joined = await member.request("join_room", name="room1")
            assert joined["type"] == "join_successful", joined
        for client in (owner, *members):
            await drain(client)
        room_id: int = created["room"]["id"]
        return room_id

    async def assertError(
        self, client: WireClient, code: str, kind: str, **fields: Any
    ) -> wire.Payload:
        """
        Check that a request is refused with C{code}.

        @return: the error.
        """
        reply = await client.request(kind, **fields)
        self.assertEqual(reply["type"], "error", reply)
        self.assertEqual(reply["code"], code, reply)
        return reply


class UploadTests(Base):
    """
    Uploads in three steps: start, chunks, finish.
    """

    async def test_multi_chunk_upload(self) -> None:
        """
        100 KB sent as four chunks in flight at once get upload_ready with
        the chunk size, upload_progress with the bytes so far, and
        file_stored with the File; the content is on disk under its SHA-256
        and no part is left.
        """
        running, (ann,) = await self.users("ann")
        data = content(100_000)
        ready = await ann.request(
            "upload_start", name="notes.txt", size=len(data), mime="text/plain"
        )
        self.assertEqual(ready["type"], "upload_ready")
        self.assertEqual(ready["chunk_size"], 32768)
        upload_id = ready["upload_id"]
        self.assertIsInstance(upload_id, str)
        replies = await send_chunks(ann, upload_id, data)
        self.assertEqual(
            [(r["type"], r["upload_id"], r["received"]) for r in replies],
            [
                ("upload_progress", upload_id, 32768),
                ("upload_progress", upload_id, 65536),
                ("upload_progress", upload_id, 98304),
                ("upload_progress", upload_id, 100_000),
            ],
        )
        stored = await ann.request("upload_finish", upload_id=upload_id, sha256=sha256(data))
        self.assertEqual(stored["type"], "file_stored", stored)
        file = stored["file"]
        self.assertEqual(
            {key: value for key, value in file.items() if key != "id"},
            {"name": "notes.txt", "size": 100_000, "mime": "text/plain", "sha256": sha256(data)},
        )
        self.assertIsInstance(file["id"], str)
        self.assertNotEqual(file["id"], upload_id)
        self.assertEqual(running.on_disk(), [sha256(data)])
        with open(os.path.join(running.folder, sha256(data)), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(await download(ann, file["id"]), data)

    async def test_one_chunk_upload(self) -> None:
        """
        A file of one byte is one chunk; mime defaults to
        application/octet-stream.
        """
        _running, (ann,) = await self.users("ann")
        file = await upload(ann, b"x", name="x")
        self.assertEqual(file["mime"], "application/octet-stream")
        self.assertEqual(file["size"], 1)
        self.assertEqual(await download(ann, file["id"]), b"x")

    async def test_same_content_stored_once(self) -> None:
        """
        The same content uploaded twice is two files (two ids, two rows)
        and one file on disk.
        """
        running, (ann,) = await self.users("ann")
        data = content(40_000)
        first = await upload(ann, data, name="a.bin")
        second = await upload(ann, data, name="b.bin")
        self.assertNotEqual(first["id"], second["id"])
        self.assertEqual(first["sha256"], second["sha256"])
        self.assertEqual(running.on_disk(), [sha256(data)])
        self.assertEqual(
            running.rows(),
            [(first["id"], ANN, sha256(data), 0), (second["id"], ANN, sha256(data), 0)],
        )
        self.assertEqual(await download(ann, second["id"]), data)

    async def test_bad_start_fields(self) -> None:
        """
        A name that is empty, longer than 255 characters, or holds '/', '\\'
        or a control character, and a mime that is not type/subtype, are
        invalid_field; a size of 0 is file_too_large; nothing is opened.
        """
        running, (ann,) = await self.users("ann")
        for name in ("", "a/b", "a\\b", "a\nb", "a\x00b", "a\x7fb", "a\x85b", "x" * 256):
            await self.assertError(ann, wire.INVALID_FIELD, "upload_start", name=name, size=10)
            await drain(ann)
        for mime in ("png", "image/", "/png", "image/png; q=1", "image/p ng", "imagé/png", 5):
            await self.assertError(
                ann, wire.INVALID_FIELD, "upload_start", name="a", size=10, mime=mime
            )
            await drain(ann)
        for size in (-1, 1.0, "10", True, None):
            await self.assertError(ann, wire.INVALID_FIELD, "upload_start", name="a", size=size)
            await drain(ann)
        await self.assertError(ann, wire.FILE_TOO_LARGE, "upload_start", name="a", size=0)
        self.assertEqual(running.parts(), [])
        # What passes: 255 characters of any script, a long RFC 6838 type.
        await start_upload(ann, b"x", name="é" * 255, mime="application/vnd.a+b.c-d_e")
        self.assertEqual(len(running.parts()), 1)

    async def test_empty_mime_is_invalid(self) -> None:
        """
        A mime that is present but empty is not type/subtype: invalid_field
        (only an absent mime means application/octet-stream).
        """
        _running, (ann,) = await self.users("ann")
        await self.assertError(ann, wire.INVALID_FIELD, "upload_start", name="a", size=1, mime="")

    async def test_max_upload(self) -> None:
        """
        A size above --max-upload is file_too_large; a size of exactly
        --max-upload is accepted.
        """
        running, (ann,) = await self.users("ann", file_limits=FileLimits(max_upload=1000))
        await self.assertError(ann, wire.FILE_TOO_LARGE, "upload_start", name="a", size=1001)
        self.assertEqual(running.parts(), [])
        file = await upload(ann, content(1000))
        self.assertEqual(file["size"], 1000)

    async def test_quota_counts_stored_and_in_progress(self) -> None:
        """
        --user-quota counts the files stored and the uploads in progress: an
        upload_start that would pass it is quota_exceeded; one that fits
        exactly is accepted; another user has their own quota.
        """
        limits = FileLimits(max_upload=1000, user_quota=2500)
        _running, (ann, bob) = await self.users("ann", "bob", file_limits=limits)
        await upload(ann, content(1000))
        await start_upload(ann, content(1000, 1))
        await self.assertError(ann, wire.QUOTA_EXCEEDED, "upload_start", name="a", size=501)
        await start_upload(ann, content(500, 2))
        await self.assertError(ann, wire.QUOTA_EXCEEDED, "upload_start", name="a", size=1)
        await upload(bob, content(1000, 3))

    async def test_at_most_four_uploads_open(self) -> None:
        """
        A fifth upload_start while four uploads are open is not_allowed;
        finishing one makes room again.
        """
        _running, (ann,) = await self.users("ann")
        data = content(10)
        upload_ids = [await start_upload(ann, data) for _ in range(4)]
        self.assertEqual(len(set(upload_ids)), 4)
        await self.assertError(ann, wire.NOT_ALLOWED, "upload_start", name="a", size=10)
        await send_chunks(ann, upload_ids[0], data)
        stored = await ann.request("upload_finish", upload_id=upload_ids[0], sha256=sha256(data))
        self.assertEqual(stored["type"], "file_stored")
        await start_upload(ann, data)
        await self.assertError(ann, wire.NOT_ALLOWED, "upload_start", name="a", size=10)

    async def test_unknown_or_foreign_upload_id(self) -> None:
        """
        An unknown upload_id, or another connection's (even the same
        user's, from an older session), is no_such_file for chunks and
        finish, and the owner's upload goes on.
        """
        _running, (ann, bob) = await self.users("ann", "bob")
        data = content(10)
        upload_id = await start_upload(ann, data)
        for client, upload_ids in ((ann, ("nope", "")), (bob, (upload_id,))):
            for other in upload_ids:
                await self.assertError(
                    client,
                    wire.NO_SUCH_FILE,
                    "upload_chunk",
                    upload_id=other,
                    offset=0,
                    data=b64(data),
                )
                await self.assertError(
                    client, wire.NO_SUCH_FILE, "upload_finish", upload_id=other, sha256=sha256(data)
                )
        self.assertEqual((await send_chunks(ann, upload_id, data))[0]["received"], 10)
        stored = await ann.request("upload_finish", upload_id=upload_id, sha256=sha256(data))
        self.assertEqual(stored["type"], "file_stored")

    async def test_upload_id_belongs_to_its_connection(self) -> None:
        """
        The same user logged in again (the older session kicked) cannot
        continue the older connection's upload.
        """
        running, (ann,) = await self.users("ann")
        data = content(10)
        upload_id = await start_upload(ann, data)
        again = await logged_in(self, running.port, "ann")
        await ann.lost
        await self.assertError(
            again, wire.NO_SUCH_FILE, "upload_chunk", upload_id=upload_id, offset=0, data=b64(data)
        )

    async def test_wrong_offset_and_past_size(self) -> None:
        """
        A chunk at another offset than the bytes received, or going past
        the size, is invalid_field and changes nothing: the upload goes on
        and is stored whole.
        """
        _running, (ann,) = await self.users("ann")
        data = content(50_000)
        upload_id = await start_upload(ann, data)
        for offset in (1, 32768):
            await self.assertError(
                ann,
                wire.INVALID_FIELD,
                "upload_chunk",
                upload_id=upload_id,
                offset=offset,
                data=b64(data[:10]),
            )
        first = await ann.request(
            "upload_chunk", upload_id=upload_id, offset=0, data=b64(data[:CHUNK_SIZE])
        )
        self.assertEqual(first["received"], CHUNK_SIZE)
        await self.assertError(
            ann, wire.INVALID_FIELD, "upload_chunk", upload_id=upload_id, offset=0, data=b64(b"x")
        )
        # 17233 bytes are left: 17234 go past the size.
        await self.assertError(
            ann,
            wire.INVALID_FIELD,
            "upload_chunk",
            upload_id=upload_id,
            offset=CHUNK_SIZE,
            data=b64(data[CHUNK_SIZE:] + b"x"),
        )
        rest = await ann.request(
            "upload_chunk", upload_id=upload_id, offset=CHUNK_SIZE, data=b64(data[CHUNK_SIZE:])
        )
        self.assertEqual(rest["received"], 50_000)
        await self.assertError(
            ann,
            wire.INVALID_FIELD,
            "upload_chunk",
            upload_id=upload_id,
            offset=50_000,
            data=b64(b"x"),
        )
        stored = await ann.request("upload_finish", upload_id=upload_id, sha256=sha256(data))
        self.assertEqual(stored["type"], "file_stored", stored)
        self.assertEqual(await download(ann, stored["file"]["id"]), data)

    async def test_bad_chunk_data(self) -> None:
        """
        Chunk data that is not padded standard base64 of 1 to chunk_size
        bytes is invalid_field, and the upload goes on.
        """
        _running, (ann,) = await self.users("ann")
        data = content(CHUNK_SIZE + 1)
        upload_id = await start_upload(ann, data)
        for bad in ("", "eA", "e A=", "-_8=", "!!!!", b64(data), 5, None):
            await self.assertError(
                ann, wire.INVALID_FIELD, "upload_chunk", upload_id=upload_id, offset=0, data=bad
            )
            await drain(ann)
        for offset in (-1, "0", 0.0):
            await self.assertError(
                ann,
                wire.INVALID_FIELD,
                "upload_chunk",
                upload_id=upload_id,
                offset=offset,
                data=b64(b"x"),
            )
            await drain(ann)
        replies = await send_chunks(ann, upload_id, data)
        self.assertEqual([r["received"] for r in replies], [CHUNK_SIZE, CHUNK_SIZE + 1])

    async def test_finish_with_fewer_bytes(self) -> None:
        """
        upload_finish before every byte came is upload_incomplete and the
        upload is gone: its part is removed, a chunk or a finish for it is
        no_such_file.
        """
        running, (ann,) = await self.users("ann", inline_files=True)
        data = content(40_000)
        upload_id = await start_upload(ann, data)
        await send_chunks(ann, upload_id, data[:CHUNK_SIZE])
        await self.assertError(
            ann, wire.UPLOAD_INCOMPLETE, "upload_finish", upload_id=upload_id, sha256=sha256(data)
        )
        self.assertEqual(running.parts(), [])
        await self.assertError(
            ann,
            wire.NO_SUCH_FILE,
            "upload_chunk",
            upload_id=upload_id,
            offset=CHUNK_SIZE,
            data=b64(data[CHUNK_SIZE:]),
        )
        await self.assertError(
            ann, wire.NO_SUCH_FILE, "upload_finish", upload_id=upload_id, sha256=sha256(data)
        )
        self.assertEqual(running.rows(), [])

    async def test_finish_with_wrong_digest(self) -> None:
        """
        upload_finish with the SHA-256 of other content is
        upload_incomplete and the upload is gone; nothing is stored.
        """
        running, (ann,) = await self.users("ann", inline_files=True)
        data = content(1000)
        upload_id = await start_upload(ann, data)
        await send_chunks(ann, upload_id, data)
        await self.assertError(
            ann,
            wire.UPLOAD_INCOMPLETE,
            "upload_finish",
            upload_id=upload_id,
            sha256=sha256(data + b"x"),
        )
        await self.assertError(
            ann, wire.NO_SUCH_FILE, "upload_finish", upload_id=upload_id, sha256=sha256(data)
        )
        self.assertEqual((running.on_disk(), running.rows()), ([], []))

    async def test_bad_digest_shape(self) -> None:
        """
        A sha256 that is not 64 lower-case hex digits is invalid_field, and
        the upload stays: the right digest then stores it.
        """
        _running, (ann,) = await self.users("ann")
        data = content(1000)
        upload_id = await start_upload(ann, data)
        await send_chunks(ann, upload_id, data)
        digest = sha256(data)
        for bad in (digest.upper(), digest[:63], digest + "0", "g" * 64, " " + digest[1:], 5):
            await self.assertError(
                ann, wire.INVALID_FIELD, "upload_finish", upload_id=upload_id, sha256=bad
            )
        stored = await ann.request("upload_finish", upload_id=upload_id, sha256=digest)
        self.assertEqual(stored["type"], "file_stored", stored)

    async def test_not_authenticated(self) -> None:
        """
        Before login, every file request is not_authenticated.
        """
        running = await start_files_server(self)
        client = await wire_client(self, running.port)
        for kind, fields in (
            ("upload_start", {"name": "a", "size": 1}),
            ("upload_chunk", {"upload_id": "x", "offset": 0, "data": "eA=="}),
            ("upload_finish", {"upload_id": "x", "sha256": "0" * 64}),
            ("download", {"file_id": "x"}),
        ):
            await self.assertError(client, wire.NOT_AUTHENTICATED, kind, **fields)


class FileMessageTests(Base):
    """
    Files sent in messages, and downloaded by those who can read them.
    """

    async def test_private_file_message(self) -> None:
        """
        A file sent to a friend without a caption is a Message of kind
        "file" with caption "" and the File object, pushed to the friend and
        in both histories; the friend downloads it chunk by chunk.
        """
        running, (ann, bob) = await self.users("ann", "bob")
        await self.friends(ann, bob, "bob")
        data = content(70_000)
        file = await upload(ann, data, name="photo.png", mime="image/png")
        message = await send_file(ann, PRIVATE, BOB, file["id"])
        self.assertEqual(message["kind"], "file")
        self.assertEqual(message["message"], "")
        self.assertEqual(message["file"], file)
        self.assertEqual((message["sender_id"], message["target_id"]), (ANN, BOB))
        self.assertEqual(
            await bob.push("on_new_message"), {"type": "on_new_message", "message": message}
        )
        self.assertEqual(await history(ann, PRIVATE, BOB), [message])
        self.assertEqual(await history(bob, PRIVATE, ANN), [message])
        self.assertEqual(running.rows()[0][3], 1)

        pieces = []
        for offset in (0, 32768, 65536):
            chunk = await bob.request("download", file_id=file["id"], offset=offset)
            self.assertEqual(chunk["type"], "file_chunk")
            self.assertEqual((chunk["file_id"], chunk["offset"]), (file["id"], offset))
            pieces.append(base64.b64decode(chunk["data"]))
            self.assertEqual(chunk["eof"], offset == 65536)
        self.assertEqual([len(p) for p in pieces], [32768, 32768, 70_000 - 65536])
        self.assertEqual(b"".join(pieces), data)
        self.assertEqual(sha256(b"".join(pieces)), file["sha256"])

    async def test_caption_and_edit(self) -> None:
        """
        A caption is stored with the file; the sender edits it, to another
        text and to "", and the file stays.
        """
        _running, (ann, bob) = await self.users("ann", "bob")
        await self.friends(ann, bob, "bob")
        file = await upload(ann, b"hello")
        message = await send_file(ann, PRIVATE, BOB, file["id"], message="look at this @bob")
        self.assertEqual(message["message"], "look at this @bob")
        self.assertEqual(message["mentions"], [BOB])
        self.assertEqual(message["file"], file)
        for caption in ("a new caption", ""):
            edited = await ann.request("edit_message", message_id=message["id"], message=caption)
            self.assertEqual(edited["type"], "message_edited", edited)
            self.assertEqual(edited["message"]["message"], caption)
            self.assertEqual(edited["message"]["kind"], "file")
            self.assertEqual(edited["message"]["file"], file)
            self.assertIsNotNone(edited["message"]["edited_at"])
        (stored,) = await history(bob, PRIVATE, ANN)
        self.assertEqual((stored["message"], stored["file"]), ("", file))
        self.assertEqual(await download(bob, file["id"]), b"hello")
        # A caption follows the rules of a text (section 4), empty aside.
        await self.assertError(
            ann,
            wire.INVALID_MESSAGE,
            "send_message",
            target_type=PRIVATE,
            target_id=BOB,
            file_id=file["id"],
            message="   ",
        )
        await self.assertError(
            ann, wire.INVALID_MESSAGE, "edit_message", message_id=message["id"], message=" "
        )

    async def test_room_file_message(self) -> None:
        """
        A file sent to a room is pushed to the other members, who download
        it; a member who joined after the message cannot (history from the
        join), nor can one who left.
        """
        _running, (ann, bob, cat) = await self.users("ann", "bob", "cat")
        room = await self.room(ann, bob)
        data = content(5000)
        file = await upload(ann, data)
        message = await send_file(ann, ROOM, room, file["id"], message="the plan")
        self.assertEqual(
            (message["kind"], message["target_id"], message["room_name"]), ("file", room, "room1")
        )
        self.assertEqual(
            await bob.push("on_new_message"), {"type": "on_new_message", "message": message}
        )
        self.assertIn(message, await history(bob, ROOM, room))
        self.assertEqual(await download(bob, file["id"]), data)

        joined = await cat.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        self.assertNotIn(message["id"], [m["id"] for m in await history(cat, ROOM, room)])
        await self.assertError(cat, wire.NO_SUCH_FILE, "download", file_id=file["id"])

        await bob.request("quit_room", room_id=room)
        await self.assertError(bob, wire.NO_SUCH_FILE, "download", file_id=file["id"])

    async def test_who_may_download(self) -> None:
        """
        The uploader downloads before sending; the friend cannot until the
        message is sent; a stranger never can; an unknown id is
        no_such_file.
        """
        _running, (ann, bob, cat) = await self.users("ann", "bob", "cat")
        await self.friends(ann, bob, "bob")
        data = content(100)
        file = await upload(ann, data)
        self.assertEqual(await download(ann, file["id"]), data)
        await self.assertError(bob, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        await send_file(ann, PRIVATE, BOB, file["id"])
        self.assertEqual(await download(bob, file["id"]), data)
        await self.assertError(cat, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        await self.assertError(cat, wire.NO_SUCH_FILE, "download", file_id=file["id"], offset=500)
        await self.assertError(ann, wire.NO_SUCH_FILE, "download", file_id="nope")

    async def test_only_the_uploader_sends(self) -> None:
        """
        Someone who is not the uploader sending a file_id, even one they
        can download, gets no_such_file and nothing is stored; an unknown
        file_id too.
        """
        _running, (ann, bob, cat) = await self.users("ann", "bob", "cat")
        await self.friends(ann, bob, "bob")
        await self.friends(bob, cat, "cat")
        file = await upload(ann, b"mine")
        await send_file(ann, PRIVATE, BOB, file["id"])
        for target, file_id in ((ANN, file["id"]), (CAT, file["id"]), (CAT, "nope")):
            await self.assertError(
                bob,
                wire.NO_SUCH_FILE,
                "send_message",
                target_type=PRIVATE,
                target_id=target,
                file_id=file_id,
            )
        self.assertEqual(len(await history(bob, PRIVATE, ANN)), 1)
        self.assertEqual(await history(bob, PRIVATE, CAT), [])
        await self.assertError(cat, wire.NO_SUCH_FILE, "download", file_id=file["id"])

    async def test_download_fields(self) -> None:
        """
        offset at or past the size is invalid_field; the default length is
        the chunk size; a shorter length returns that many bytes, fewer
        where the file ends; a length above the chunk size, or below 1, is
        invalid_field.
        """
        _running, (ann,) = await self.users("ann")
        data = content(40_000)
        file = await upload(ann, data)
        file_id = file["id"]
        for offset in (40_000, 40_001, 2**40):
            await self.assertError(
                ann, wire.INVALID_FIELD, "download", file_id=file_id, offset=offset
            )
        for length in (0, -1, CHUNK_SIZE + 1, "10", 1.5):
            await self.assertError(
                ann, wire.INVALID_FIELD, "download", file_id=file_id, length=length
            )
            await drain(ann)
        for offset in (-1, "0", 1.0):
            await self.assertError(
                ann, wire.INVALID_FIELD, "download", file_id=file_id, offset=offset
            )
            await drain(ann)
        first = await ann.request("download", file_id=file_id)
        self.assertEqual((first["offset"], first["eof"]), (0, False))
        self.assertEqual(base64.b64decode(first["data"]), data[:CHUNK_SIZE])
        part = await ann.request("download", file_id=file_id, offset=100, length=1000)
        self.assertEqual(base64.b64decode(part["data"]), data[100:1100])
        self.assertFalse(part["eof"])
        end = await ann.request("download", file_id=file_id, offset=39_000, length=CHUNK_SIZE)
        self.assertEqual(base64.b64decode(end["data"]), data[39_000:])
        self.assertTrue(end["eof"])
        last = await ann.request("download", file_id=file_id, offset=39_999, length=1)
        self.assertEqual((base64.b64decode(last["data"]), last["eof"]), (data[-1:], True))
        exact = await ann.request("download", file_id=file_id, offset=39_000, length=1000)
        self.assertTrue(exact["eof"])


class DeletionTests(Base):
    """
    A file no message refers to any more is removed from the server.
    """

    async def test_delete_removes_file(self) -> None:
        """
        After its message is deleted, the file is no_such_file for the
        friend and the uploader, the message is a tombstone of kind "file"
        with file null, the row is gone, and the next sweep removes the
        content from disk.
        """
        running, (ann, bob) = await self.users("ann", "bob")
        await self.friends(ann, bob, "bob")
        data = content(3000)
        file = await upload(ann, data)
        message = await send_file(ann, PRIVATE, BOB, file["id"], message="soon gone")
        await bob.push("on_new_message")
        deleted = await ann.request("delete_message", message_id=message["id"])
        self.assertEqual(deleted["type"], "message_deleted", deleted)
        pushed = await bob.push("message_deleted")
        self.assertEqual(pushed["message_id"], message["id"])
        for client in (bob, ann):
            await self.assertError(client, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        for client, other in ((ann, BOB), (bob, ANN)):
            (tombstone,) = await history(client, PRIVATE, other)
            self.assertEqual(
                {key: tombstone[key] for key in ("id", "kind", "deleted", "message", "file")},
                {"id": message["id"], "kind": "file", "deleted": True, "message": "", "file": None},
            )
        self.assertEqual(running.rows(), [])
        # The content waits on disk for the sweep.
        self.assertEqual(running.on_disk(), [sha256(data)])
        self.assertEqual(await running.sweep(), 1)
        self.assertEqual(running.on_disk(), [])
        # A deleted file message cannot be sent on: its file_id is gone.
        await self.assertError(
            ann,
            wire.NO_SUCH_FILE,
            "send_message",
            target_type=PRIVATE,
            target_id=BOB,
            file_id=file["id"],
        )

    async def test_room_moderator_deletes_file(self) -> None:
        """
        A room owner deleting a member's file message removes the file.
        """
        running, (ann, bob) = await self.users("ann", "bob")
        room = await self.room(ann, bob)
        file = await upload(bob, b"spam")
        message = await send_file(bob, ROOM, room, file["id"])
        deleted = await ann.request("delete_message", message_id=message["id"])
        self.assertEqual(deleted["type"], "message_deleted", deleted)
        await self.assertError(bob, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        self.assertEqual(running.rows(), [])

    async def test_same_file_in_two_messages(self) -> None:
        """
        The same file sent in two messages stays while one of them carries
        it; deleting the second removes it.
        """
        running, (ann, bob, cat) = await self.users("ann", "bob", "cat")
        await self.friends(ann, bob, "bob")
        room = await self.room(ann, cat)
        data = content(2000)
        file = await upload(ann, data)
        private = await send_file(ann, PRIVATE, BOB, file["id"])
        public = await send_file(ann, ROOM, room, file["id"], message="again")
        self.assertEqual(public["file"], file)
        await ann.request("delete_message", message_id=private["id"])
        await self.assertError(bob, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        self.assertEqual(await download(cat, file["id"]), data)
        self.assertEqual(await download(ann, file["id"]), data)
        self.assertEqual(await running.sweep(), 0)
        self.assertEqual(running.on_disk(), [sha256(data)])
        await ann.request("delete_message", message_id=public["id"])
        await self.assertError(cat, wire.NO_SUCH_FILE, "download", file_id=file["id"])
        self.assertEqual(running.rows(), [])
        self.assertEqual(await running.sweep(), 1)
        self.assertEqual(running.on_disk(), [])

    async def test_shared_content_outlives_one_file(self) -> None:
        """
        Two files of the same content: deleting the message of one leaves
        the content on disk after a sweep, for the other.
        """
        running, (ann, bob) = await self.users("ann", "bob")
        await self.friends(ann, bob, "bob")
        data = content(2000)
        first = await upload(ann, data)
        second = await upload(bob, data)
        gone = await send_file(ann, PRIVATE, BOB, first["id"])
        await send_file(bob, PRIVATE, ANN, second["id"])
        await ann.request("delete_message", message_id=gone["id"])
        self.assertEqual([row[0] for row in running.rows()], [second["id"]])
        self.assertEqual(await running.sweep(), 0)
        self.assertEqual(await download(ann, second["id"]), data)
        await self.assertError(bob, wire.NO_SUCH_FILE, "download", file_id=first["id"])

    async def test_sweep_keeps_unsent_and_in_progress(self) -> None:
        """
        A sweep keeps the content of files stored and not yet sent, and the
        parts of uploads in progress.
        """
        running, (ann,) = await self.users("ann")
        data = content(2000)
        await upload(ann, data)
        upload_id = await start_upload(ann, data)
        await send_chunks(ann, upload_id, data[:1000], 0)
        self.assertEqual(await running.sweep(), 0)
        self.assertEqual(running.on_disk(), sorted([sha256(data), upload_id + ".part"]))
        rest = await ann.request(
            "upload_chunk", upload_id=upload_id, offset=1000, data=b64(data[1000:])
        )
        self.assertEqual(rest["received"], 2000)


class RateTests(Base):
    """
    Chunks count against the transfer rate, not the request rate.
    """

    async def test_chunks_are_not_requests(self) -> None:
        """
        With --rate 1 and --burst 2, forty chunks sent at once are all
        accepted, while pings beyond the burst are rate_limited.
        """
        running = await start_files_server(self, Limits(rate=1, burst=2))
        ann = await logged_in(self, running.port, "ann")
        running.clock.ahead += 10  # the register and login tokens come back
        data = content(40 * 100)
        upload_id = await start_upload(ann, data)
        replies = await send_chunks(ann, upload_id, data[:100])
        pending = [
            ann.request(
                "upload_chunk",
                upload_id=upload_id,
                offset=offset,
                data=b64(data[offset : offset + 100]),
            )
            for offset in range(100, len(data), 100)
        ]
        replies += [await d for d in pending]
        self.assertEqual([r["type"] for r in replies], ["upload_progress"] * 40)
        self.assertEqual(replies[-1]["received"], 4000)
        pings = [ann.request("ping") for _ in range(4)]
        codes = [(await d).get("code") for d in pings]
        self.assertIn(wire.RATE_LIMITED, codes)

    async def test_transfer_rate(self) -> None:
        """
        Chunks beyond the transfer budget are rate_limited and append
        nothing: the same chunk is accepted once the budget is back, and
        downloads share the budget.
        """
        running, (ann,) = await self.users(
            "ann", limits=Limits(transfer_rate=1024, transfer_burst=65536)
        )
        data = content(4 * CHUNK_SIZE)
        upload_id = await start_upload(ann, data)
        replies = await send_chunks(ann, upload_id, data)
        self.assertEqual(
            [r.get("received", r.get("code")) for r in replies],
            [CHUNK_SIZE, 2 * CHUNK_SIZE, wire.RATE_LIMITED, wire.RATE_LIMITED],
        )
        running.clock.ahead += 32
        replies = await send_chunks(ann, upload_id, data[2 * CHUNK_SIZE :], 2 * CHUNK_SIZE)
        self.assertEqual(
            [r.get("received", r.get("code")) for r in replies],
            [3 * CHUNK_SIZE, wire.RATE_LIMITED],
        )
        running.clock.ahead += 32
        last = await ann.request(
            "upload_chunk",
            upload_id=upload_id,
            offset=3 * CHUNK_SIZE,
            data=b64(data[3 * CHUNK_SIZE :]),
        )
        self.assertEqual(last["received"], 4 * CHUNK_SIZE)
        stored = await ann.request("upload_finish", upload_id=upload_id, sha256=sha256(data))
        self.assertEqual(stored["type"], "file_stored", stored)
        file_id = stored["file"]["id"]

        # Downloads: a default length costs a whole chunk, a short one its
        # length.
        running.clock.ahead += 64
        first = [
            ann.request("download", file_id=file_id, offset=o)
            for o in (0, CHUNK_SIZE, 2 * CHUNK_SIZE)
        ]
        self.assertEqual([(await d)["type"] for d in first], ["file_chunk", "file_chunk", "error"])
        await self.assertError(ann, wire.RATE_LIMITED, "download", file_id=file_id, length=1000)
        running.clock.ahead += 1
        short = await ann.request("download", file_id=file_id, length=1000)
        self.assertEqual(base64.b64decode(short["data"]), data[:1000])
        # The requests bucket is not touched by any of this.
        self.assertEqual((await ann.request("ping"))["type"], "pong")


class ConnectionTests(Base):
    """
    Uploads belong to their connection; slow readers are bounded.
    """

    async def test_close_mid_upload(self) -> None:
        """
        A connection that closes mid-upload leaves no part once the server
        saw it close, and no row.
        """
        running, (ann, bob) = await self.users("ann", "bob", inline_files=True)
        await self.friends(ann, bob, "bob")
        data = content(50_000)
        upload_id = await start_upload(ann, data)
        await send_chunks(ann, upload_id, data[:CHUNK_SIZE])
        self.assertEqual(running.parts(), [upload_id + ".part"])
        await ann.close()
        offline = await bob.push("friend_on_off_line")
        self.assertEqual(offline["online"], False)
        self.assertEqual(running.parts(), [])
        self.assertEqual(running.rows(), [])
        again = await logged_in(self, running.port, "ann")
        await self.assertError(
            again,
            wire.NO_SUCH_FILE,
            "upload_chunk",
            upload_id=upload_id,
            offset=CHUNK_SIZE,
            data=b64(data[CHUNK_SIZE:]),
        )

    async def test_stalled_download_reader(self) -> None:
        """
        A client that sends downloads and stops reading is disconnected once
        more than --max-pending bytes wait for it; other connections keep
        working.
        """
        limits = Limits(max_pending=65536, transfer_rate=2**30, transfer_burst=2**30)
        running, (ann, bob) = await self.users("ann", "bob", limits=limits)
        await self.friends(ann, bob, "bob")
        file = await upload(ann, content(2 * CHUNK_SIZE))
        await send_file(ann, PRIVATE, BOB, file["id"])
        ann.transport.pauseProducing()
        frames = [
            json.dumps({"type": "download", "file_id": file["id"], "offset": offset}).encode()
            for offset in (0, CHUNK_SIZE)
        ]
        # Each download answers 43 KB, and the kernel's buffers hold a few
        # MB: downloads go on until the server has dropped ann (bob sees
        # her go offline), up to 170 MB of them.  They carry no id: no
        # reply is awaited.
        offline = bob.push("friend_on_off_line")
        sent = 0

        def flood() -> None:
            nonlocal sent
            if offline.called or sent >= 4000:
                return
            for _ in range(20):
                ann.sendString(frames[sent % 2])
                sent += 1
            reactor.callLater(0, flood)

        flood()
        self.assertEqual((await offline)["user_id"], ANN)
        # Reading again, ann finds her connection closed.
        ann.transport.resumeProducing()
        await ann.lost
        self.assertEqual((await bob.request("ping"))["type"], "pong")
        self.assertEqual(await download(bob, file["id"]), content(2 * CHUNK_SIZE))
        self.assertEqual(running.assembly.factory.unsent(), 0)


class ProcessTests(Base):
    """
    The real twistd chatd under kill -9.
    """

    timeout = 60

    async def test_sigkill_mid_upload(self) -> None:
        """
        After a kill -9 a stored file (file_stored received) downloads
        whole with its digest, while the upload that was in progress left no
        part, no row, and its upload_id names nothing.
        """
        db = os.path.abspath(self.mktemp() + ".sqlite3")
        folder = db + ".files"
        process, transport, port = await start_process(self, db)
        ann = await logged_in(self, port, "ann")
        kept = content(70_000, 1)
        file = await upload(ann, kept, name="kept.bin")
        partial = content(100_000, 2)
        upload_id = await start_upload(ann, partial)
        replies = await send_chunks(ann, upload_id, partial[: 2 * CHUNK_SIZE])
        self.assertEqual(replies[-1]["received"], 2 * CHUNK_SIZE)
        self.assertEqual(sorted(os.listdir(folder)), sorted([sha256(kept), upload_id + ".part"]))

        transport.signalProcess("KILL")
        self.assertEqual(await process.ended, 9)
        await ann.lost

        process, transport, port = await start_process(self, db)
        self.assertEqual(os.listdir(folder), [sha256(kept)])
        self.assertEqual(file_rows(db), [(file["id"], ANN, sha256(kept), 0)])
        ann = await wire_client(self, port)
        await ann.request("login", username="ann", password="secret1")
        await ann.push("login_info")
        data = await download(ann, file["id"])
        self.assertEqual((data, sha256(data)), (kept, file["sha256"]))
        await self.assertError(ann, wire.NO_SUCH_FILE, "download", file_id=upload_id)
        await self.assertError(
            ann,
            wire.NO_SUCH_FILE,
            "upload_chunk",
            upload_id=upload_id,
            offset=2 * CHUNK_SIZE,
            data=b64(partial[2 * CHUNK_SIZE :][:CHUNK_SIZE]),
        )
        await self.assertError(
            ann, wire.NO_SUCH_FILE, "upload_finish", upload_id=upload_id, sha256=sha256(partial)
        )


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    UploadTests,
    FileMessageTests,
    DeletionTests,
    RateTests,
    ConnectionTests,
)
