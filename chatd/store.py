"""
Every SQL statement of chatd.

The database is SQLite reached through L{twisted.enterprise.adbapi}: no SQL
runs on the reactor thread.  There are two pools on the same file:

  - the writer, one connection, used only through the L{GroupCommit}:
    every change is a C{*_txn} job committed in a group;
  - the readers, for history, logins and unread counts; WAL lets them read
    while the writer writes.

Every connection runs with C{journal_mode=WAL}, C{foreign_keys=ON},
C{synchronous=FULL}, C{secure_delete=ON} and a C{busy_timeout}; connections are in autocommit
mode and transactions are begun explicitly, so the writer decides where
one ends.

The schema is the numbered files of C{sql/}, shipped inside the package and
applied in order at start; C{schema_version} records the last one applied.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, field, fields
from importlib import resources
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from twisted.enterprise.adbapi import ConnectionPool, Transaction
from twisted.internet.defer import Deferred

from chatd import wire
from chatd.database import DatabaseHealth, is_postgresql_txn
from chatd.metrics import Metrics
from chatd.wire import PRIVATE, ROOM, ChatError
from chatd.writer import Deliveries, GroupCommit, single_change, together, utc_stamp

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_SCHEMA_FILE = re.compile(r"(\d+)_[\w-]+\.sql")


@dataclass(frozen=True, slots=True)
class StoredQuote:
    """
    What a reply shows of the message it answers (PROTOCOL.md 3, Quote):
    its current text cut to L{QUOTE_LENGTH} code points, or C{""} once it
    was deleted.
    """

    id: int
    sender_id: int
    body: str
    deleted: bool


#: Code points of the quoted text a reply carries.
QUOTE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class StoredFile:
    """
    A file as stored (PROTOCOL.md section 14): the File object of the wire,
    and who uploaded it.

    @ivar sha256: the hex digest of its content, which names the content
        in the files folder (L{chatd.files}).
    """

    id: str
    name: str
    size: int
    mime: str
    sha256: str
    uploader_id: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """
    One message with what version 2 adds to it.  L{chatd.server} adds the
    names for the wire.

    @ivar reactions: each emoji with at least one user, in the order it
        was first added, with the ids of its users ascending.
    @ivar mentions: the ids of the users it mentions, ascending.
    """

    id: int
    client_msg_id: str | None
    sender_id: int
    target_type: int
    target_id: int
    kind: str
    body: str
    time: str
    edited_at: str | None = None
    deleted: bool = False
    reply_to: StoredQuote | None = None
    mentions: tuple[int, ...] = ()
    reactions: tuple[tuple[str, tuple[int, ...]], ...] = ()
    file: StoredFile | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """
    What a login checks: the account and its stored password hash.
    """

    id: int
    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Account:
    """
    An account as the operator sees it (C{chatd-admin users}).

    @ivar last_seen_at: when its latest session ended (or began), or
        L{None} if it never logged in.
    """

    id: int
    username: str
    created_at: str
    last_seen_at: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Totals:
    """
    What the database holds, counted (C{chatd-admin stats}).
    """

    users: int
    rooms: int
    messages: int


@dataclass(slots=True)
class Snapshot:
    """
    Everything a message send checks, loaded once at start and then kept
    current in memory by L{chatd.server.ChatServer}.

    @ivar users: user id -> username.
    @ivar disabled: the ids of the disabled accounts.
    @ivar friendships: accepted pairs, each once.
    @ivar rooms: room id -> name.
    @ivar owners: room id -> the id of its owner, for the rooms that have
        one.
    @ivar topics: room id -> its topic, for the rooms that have one.
    @ivar members: C{(room_id, user_id, joined_message_id)} rows.
    @ivar moderators: C{(room_id, user_id)} of every moderator.
    @ivar bans: C{(room_id, user_id)} of every ban.
    """

    users: dict[int, str] = field(default_factory=dict)
    disabled: list[int] = field(default_factory=list)
    friendships: list[tuple[int, int]] = field(default_factory=list)
    rooms: dict[int, str] = field(default_factory=dict)
    owners: dict[int, int] = field(default_factory=dict)
    topics: dict[int, str] = field(default_factory=dict)
    members: list[tuple[int, int, int]] = field(default_factory=list)
    moderators: list[tuple[int, int]] = field(default_factory=list)
    bans: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Unread:
    """
    A conversation with messages the user has not read.
    """

    target_type: int
    target_id: int
    count: int
    mentions: int
    last_message_id: int


def schema_files(postgresql: bool = False) -> list[tuple[int, str]]:
    """
    @return: the numbered schema files shipped in C{chatd/sql} (SQLite's)
        or C{chatd/sql/postgresql}, as C{(number, sql)} in order.
    """
    found = []
    folder = resources.files("chatd").joinpath("sql")
    if postgresql:
        folder = folder.joinpath("postgresql")
    for entry in folder.iterdir():
        match = _SCHEMA_FILE.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found)


class Store:
    """
    The chatd database.

    Read methods return Deferreds from the reader pool.  Write methods
    submit a job to the L{GroupCommit} and return its Deferred, which
    fires after the commit.
    """

    def __init__(
        self,
        writer_pool: ConnectionPool,
        reader_pool: ConnectionPool,
        *,
        deliveries: Deliveries = nullcontext,
        now: Callable[[], float] = time.time,
        token_days: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        """
        @param writer_pool: a pool of exactly one connection: every write
            goes through it.
        @param reader_pool: the pool for reads.
        @param deliveries: what the callbacks of each committed group of
            writes run within (see L{GroupCommit}).
        @param now: the wall clock, for the commit time of each transaction
            and the age of tokens.
        @param token_days: how long a session token works unused.
        @param metrics: where the writer counts its commits.
        """
        self._now = now
        self._token_seconds = token_days * 86400
        self._writer_pool = writer_pool
        self._reader_pool = reader_pool
        #: Whether the database is PostgreSQL rather than SQLite.
        self.postgresql = writer_pool.dbapiName == "psycopg"
        self._health = DatabaseHealth()
        #: Every write goes through it; L{GroupCommit.idle} tells when they
        #: have all committed.
        self.writer = GroupCommit(
            writer_pool, self._health, now, deliveries=deliveries, metrics=metrics
        )

    def migrate(self) -> Deferred[None]:
        """
        Apply the schema files not yet applied, each in its own transaction.
        """
        if self.postgresql:
            return self._writer_pool.runInteraction(
                _migrate_postgresql_txn, schema_files(postgresql=True)
            )
        return self._writer_pool.runInteraction(_migrate_txn, schema_files())

    def close(self) -> None:
        """
        Close both pools (waiting for their threads to finish).
        """
        self._reader_pool.close()
        self._writer_pool.close()

    def _read(self, interaction: Any, *args: Any) -> Deferred[Any]:
        d = self._reader_pool.runInteraction(interaction, *args)
        d.addCallbacks(self._read_ok, self._health.failed)
        return d

    def _read_ok(self, result: Any) -> Any:
        self._health.succeeded()
        return result

    # Reads.

    def load_directory(self) -> Deferred[Snapshot]:
        """
        @return: the users, friendships, rooms and memberships, for the
            in-memory caches.
        """
        return self._read(_load_directory_txn)

    def load_user(self, user_id: int) -> Deferred[Snapshot]:
        """
        @return: the account C{user_id} and its friendships, as
            L{load_directory} reads them (nothing when it does not exist).
        """
        return self._read(_load_user_txn, user_id)

    def load_room(self, room_id: int) -> Deferred[Snapshot]:
        """
        @return: the room C{room_id}, its members, roles and bans, as
            L{load_directory} reads them (nothing when it does not exist).
        """
        return self._read(_load_room_txn, room_id)

    def named(self, table: Literal["users", "rooms"], name: str) -> Deferred[int | None]:
        """
        @return: the id of the user or room called C{name} (in any case),
            or L{None}.
        """
        return self._read(_named_txn, table, name)

    def last_message_id(self) -> Deferred[int]:
        """
        @return: the highest message id committed so far, 0 when none is.
        """
        return self._read(_last_message_id_txn)

    def messages_after(self, after: int, limit: int) -> Deferred[list[StoredMessage]]:
        """
        @return: the first C{limit} messages of every conversation whose id
            is above C{after}, by id.
        """
        return self._read(_messages_after_txn, after, limit)

    def credentials(self, username: str) -> Deferred[Credentials | None]:
        """
        @return: the account named C{username} (case-insensitively), or
            L{None}.
        """
        return self._read(_credentials_txn, username)

    def friend_requests(self, user_id: int) -> Deferred[list[int]]:
        """
        @return: the ids of the users whose friend request to C{user_id}
            is pending, oldest first.
        """
        return self._read(_friend_requests_txn, user_id)

    def unread(
        self, user_id: int, friend_ids: Iterable[int], rooms: dict[int, int]
    ) -> Deferred[list[Unread]]:
        """
        @param rooms: the user's rooms, room id -> the id of the message of
            their latest join.
        @return: the conversations with messages from others after the
            user's read marker (and, in a room, from the latest join on).
        """
        return self._read(_unread_txn, user_id, list(friend_ids), dict(rooms))

    def message(self, message_id: int) -> Deferred[StoredMessage | None]:
        """
        @return: the message with id C{message_id}, or L{None}.
        """
        return self._read(_message_txn, message_id)

    def private_history(
        self, a: int, b: int, before: int | None, after: int | None, limit: int
    ) -> Deferred[tuple[list[StoredMessage], bool]]:
        """
        @return: a page of the private conversation of C{a} and C{b},
            oldest first, and whether more exist in the direction asked.
        """
        return self._read(_private_history_txn, min(a, b), max(a, b), before, after, limit)

    def room_history(
        self,
        room_id: int,
        since: int,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> Deferred[tuple[list[StoredMessage], bool]]:
        """
        @param since: the first message id the user may see (their latest
            join).
        @return: a page of the room's messages with ids from C{since} on,
            oldest first, and whether more exist in the direction asked.
        """
        return self._read(_room_history_txn, room_id, since, before, after, limit)

    def search(
        self,
        user_id: int,
        terms: Sequence[str],
        friend_ids: Iterable[int],
        rooms: Mapping[int, int],
        before: int | None,
        limit: int,
    ) -> Deferred[tuple[list[StoredMessage], bool]]:
        """
        Search the conversations of C{user_id} with the friends C{friend_ids}
        and in C{rooms} (PROTOCOL.md section 11).

        @param terms: case-folded, each non-empty: a match contains them all.
        @param rooms: room id -> the id of the message of the user's latest
            join, from which on they may read it.
        @return: the newest C{limit} matches with ids below C{before}
            (newest first) and whether older ones exist.
        """
        scope = Scope(user_id, frozenset(friend_ids), dict(rooms))
        bound = wire.MAX_INT if before is None else before
        return self._read(_search_txn, scope, tuple(terms), bound, limit)

    # Writes: each is one job for the writer.

    def add_user(self, username: str, password_hash: str) -> Deferred[int]:
        """
        @return: the new user's id.
        @raise ChatError: C{username_taken}.
        """
        return self.writer.submit(_add_user_txn, username, password_hash)

    def add_token(self, user_id: int, token_hash: bytes) -> Deferred[None]:
        """
        Store (the hash of) a new session token of C{user_id}, and forget
        the user's tokens that no longer work.
        """
        oldest = utc_stamp(self._now() - self._token_seconds)
        return self.writer.submit(_add_token_txn, user_id, token_hash, oldest)

    def use_token(self, token_hash: bytes) -> Deferred[int]:
        """
        Log in with a session token: it works for another C{token_days}
        from now.  The token is read on a reader connection; its time of
        use is written only when the stored one is older than a thirtieth
        of C{token_days} (a day, by default), so that a whole server's
        clients resuming after a restart cost reads, not a commit each.

        @return: the id of the user it logs in.
        @raise ChatError: C{invalid_token} when there is no such token, or
            it went unused too long.
        """
        return Deferred.fromCoroutine(self._use_token(token_hash))

    async def _use_token(self, token_hash: bytes) -> int:
        now = self._now()
        found = await self._read(_token_txn, token_hash)
        if found is None or found[1] < utc_stamp(now - self._token_seconds):
            raise ChatError(wire.INVALID_TOKEN)
        user_id, used_at = found
        if used_at < utc_stamp(now - self._token_seconds / 30):
            await self.writer.submit(_use_token_txn, token_hash)
        return int(user_id)

    def end_token(self, token_hash: bytes) -> Deferred[None]:
        """
        End a session token (its user logged out with it).
        """
        return self.writer.submit(_end_token_txn, token_hash)

    def change_password(
        self, user_id: int, password_hash: str, token_hash: bytes
    ) -> Deferred[None]:
        """
        Replace a user's password hash, end every token of theirs, and store
        the new token C{token_hash}: all in one transaction.
        """
        return self.writer.submit(_change_password_txn, user_id, password_hash, token_hash)

    def set_password_hash(self, user_id: int, password_hash: str) -> Deferred[None]:
        """
        Replace a user's password hash (after a rehash with new parameters).
        """
        return self.writer.submit(_set_password_hash_txn, user_id, password_hash)

    def add_message(
        self,
        sender_id: int,
        target_type: int,
        target_id: int,
        body: str,
        client_msg_id: str | None = None,
        *,
        reply_to: int | None = None,
        since: int = 0,
        mentions: tuple[int, ...] = (),
        file_id: str | None = None,
    ) -> Deferred[tuple[StoredMessage, bool]]:
        """
        Store a text message, or with C{file_id} a file message whose
        caption is C{body}.

        @param reply_to: the id of the message it answers.
        @param since: the first message id the sender may read in the
            conversation (their latest join, for a room), for C{reply_to}.
        @param mentions: the ids of the users it mentions, ascending.
        @return: the stored message, and C{True} if it is new; C{False} if
            the sender had already sent one with this C{client_msg_id}, which
            is the message returned.
        @param file_id: the file it carries, which C{sender_id} uploaded.
        @raise ChatError: C{no_such_message} when C{reply_to} is not a text
            or file message of the conversation, not deleted, from C{since}
            on; C{no_such_file} when C{file_id} is not a file of the sender.
        """
        return self.writer.submit(
            _add_message_txn,
            sender_id,
            target_type,
            target_id,
            "text" if file_id is None else "file",
            body,
            client_msg_id,
            reply_to,
            since,
            mentions,
            file_id,
        )

    def edit_message(
        self, message_id: int, body: str, mentions: tuple[int, ...]
    ) -> Deferred[tuple[StoredMessage, bool]]:
        """
        Replace a message's text and mentions; the old text is not kept.

        @return: the message as now stored, and whether it changed.
        @raise ChatError: C{no_such_message}; C{not_allowed} for a deleted or
            system message.
        """
        return self.writer.submit(_edit_message_txn, message_id, body, mentions)

    def delete_message(self, message_id: int) -> Deferred[None]:
        """
        Make a message a tombstone: its text is overwritten.

        @raise ChatError: C{no_such_message}; C{not_allowed} for a deleted or
            system message.
        """
        return self.writer.submit(_delete_message_txn, message_id)

    def react(
        self, message_id: int, user_id: int, emoji: str, on: bool
    ) -> Deferred[tuple[StoredMessage, bool]]:
        """
        Add or remove a user's reaction.

        @return: the message with its reactions as now stored, and whether
            they changed.
        @raise ChatError: C{no_such_message}; C{not_allowed} for a deleted or
            system message or a new emoji beyond L{MAX_EMOJI}.
        """
        return self.writer.submit(_react_txn, message_id, user_id, emoji, on)

    def add_friend(self, user_id: int, target_id: int) -> Deferred[str]:
        """
        Ask C{target_id} to be C{user_id}'s friend, or accept their request
        if they already asked.

        @return: C{"sent"} for a new request, C{"repeat"} when it was already
            pending, C{"accepted"} when it accepted the target's request.
        @raise ChatError: C{already_friends}.
        """
        return self.writer.submit(_add_friend_txn, user_id, target_id)

    def resolve_friend_request(
        self, user_id: int, requester_id: int, accept: bool
    ) -> Deferred[None]:
        """
        Accept or decline the pending request of C{requester_id} to
        C{user_id}.

        @raise ChatError: C{no_pending_request}.
        """
        return self.writer.submit(_resolve_friend_request_txn, user_id, requester_id, accept)

    def remove_friend(self, user_id: int, friend_id: int) -> Deferred[None]:
        """
        End the friendship of C{user_id} and C{friend_id}.

        @raise ChatError: C{not_friends}.
        """
        return self.writer.submit(_remove_friend_txn, user_id, friend_id)

    def create_room(self, name: str, creator_id: int, text: str) -> Deferred[StoredMessage]:
        """
        Create a room with C{creator_id} as its first member and C{text} as
        its first (system) message.

        @return: that message; its C{target_id} is the new room's id.
        @raise ChatError: C{room_exists}.
        """
        return self.writer.submit(_create_room_txn, name, creator_id, text)

    def join_room(
        self, room_id: int, actor_id: int, user_id: int, text: str
    ) -> Deferred[StoredMessage]:
        """
        Make C{user_id} a member of C{room_id}, and store the system
        message C{text} sent by C{actor_id} (the user, or the friend who
        added them).

        The first to join a room nobody is in owns it.

        @return: that message, from which on the user sees the room.
        @raise ChatError: C{not_in_room} when C{actor_id} is someone else
            and not a member; C{already_in_room}; C{not_allowed} when the
            user is banned from it.
        """
        return self.writer.submit(_join_room_txn, room_id, actor_id, user_id, text)

    def quit_room(
        self, room_id: int, user_id: int, text: str, new_owner: int | None = None
    ) -> Deferred[StoredMessage]:
        """
        Remove C{user_id} from C{room_id} and store the system message
        C{text}.  If they own the room, C{new_owner} (a member, or L{None}
        when none is left) owns it from then on, as a plain member.

        @return: that message.
        @raise ChatError: C{not_in_room}.
        """
        return self.writer.submit(_quit_room_txn, room_id, user_id, text, new_owner)

    def set_topic(
        self, room_id: int, actor_id: int, topic: str, text: str
    ) -> Deferred[StoredMessage]:
        """
        Set a room's topic, and store the system message C{text} sent by
        C{actor_id}.

        @return: that message.
        """
        return self.writer.submit(_set_topic_txn, room_id, actor_id, topic, text)

    def set_role(self, room_id: int, user_id: int, role: str) -> Deferred[None]:
        """
        Make a member of a room C{"moderator"} or C{"member"}.

        @raise ChatError: C{not_in_room}.
        """
        return self.writer.submit(_set_role_txn, room_id, user_id, role)

    def kick(
        self, room_id: int, actor_id: int, user_id: int, ban: bool, text: str
    ) -> Deferred[StoredMessage]:
        """
        Remove C{user_id} from a room (banning them too, with C{ban}), and
        store the system message C{text} sent by C{actor_id}.

        @return: that message.
        @raise ChatError: C{not_in_room}.
        """
        return self.writer.submit(_kick_txn, room_id, actor_id, user_id, ban, text)

    def unban(self, room_id: int, user_id: int) -> Deferred[None]:
        """
        Lift a ban.

        @raise ChatError: C{not_allowed} when there was none.
        """
        return self.writer.submit(_unban_txn, room_id, user_id)

    def mark_read(
        self, user_id: int, target_type: int, target_id: int, message_id: int
    ) -> Deferred[None]:
        """
        Move the user's read marker of a conversation forward to
        C{message_id} (never backwards).
        """
        return self.writer.submit(_mark_read_txn, user_id, target_type, target_id, message_id)

    def user_seen(self, user_id: int) -> Deferred[None]:
        """
        Note that C{user_id} was online now.
        """
        return self.writer.submit(_user_seen_txn, user_id)

    # Retention (chatd.retention).

    def expire_messages(self, before: str, batch: int) -> Deferred[int]:
        """
        Delete up to C{batch} of the oldest messages, those stored before
        C{before}, with everything that is theirs: one writer job, so that
        its size bounds how long it holds the writer (see
        L{_expire_messages_txn} for what goes and what stays).

        @param before: a commit time as L{utc_stamp} writes it.
        @param batch: the most messages to delete in this job.
        @return: how many messages were deleted: fewer than C{batch} when
            no more are that old.
        """
        return self.writer.submit(_expire_messages_txn, before, batch)

    # Files (PROTOCOL.md section 14, chatd.files).

    def add_file(
        self, file_id: str, uploader_id: int, name: str, size: int, mime: str, sha256: str
    ) -> Deferred[StoredFile]:
        """
        Record a finished upload, whose content is stored already.
        """
        return self.writer.submit(_add_file_txn, file_id, uploader_id, name, size, mime, sha256)

    def file_usage(self, user_id: int) -> Deferred[int]:
        """
        @return: the bytes of the files C{user_id} has stored, for the quota.
        """
        return self._read(_file_usage_txn, user_id)

    def readable_file(self, file_id: str, scope: Scope) -> Deferred[StoredFile | None]:
        """
        @return: the file C{file_id} if the user of C{scope} uploaded it or
            can read a message that carries it, else L{None}.
        """
        return self._read(_readable_file_txn, file_id, scope)

    def expire_unsent_files(self, before: str) -> Deferred[None]:
        """
        Remove the uploads finished before C{before} that no message ever
        carried.
        """
        return self.writer.submit(_expire_unsent_files_txn, before)

    def stored_digests(self) -> Deferred[set[str]]:
        """
        @return: the SHA-256 of every file a row names: the content the
            files folder must keep.
        """
        return self._read(_stored_digests_txn)

    # The operator's (PROTOCOL.md section 15, chatd.admin).

    def accounts(self, name_contains: str = "") -> Deferred[list[Account]]:
        """
        @return: the accounts whose name contains C{name_contains} (in any
            case), by id.
        """
        return self._read(_accounts_txn, name_contains)

    def totals(self) -> Deferred[Totals]:
        """
        @return: how many users, rooms and messages are stored.
        """
        return self._read(_totals_txn)

    def database_size(self) -> Deferred[int]:
        """
        @return: the bytes the database takes on PostgreSQL's disk.
        """
        return self._read(_database_size_txn)

    def export(self, user_id: int) -> Deferred[dict[str, Any]]:
        """
        @return: everything stored about C{user_id}, as JSON-ready data: the
            account, friendships and friend requests, rooms, reactions,
            every message they sent and the files they uploaded.
        """
        return self._read(_export_txn, user_id)

    def set_disabled(self, user_id: int, disabled: bool) -> Deferred[None]:
        """
        Disable or enable an account.  A disabled account keeps its tokens
        (a resume with one is then told C{account_disabled}); enabling it
        ends them.
        """
        return self.writer.submit(_set_disabled_txn, user_id, disabled)

    def reset_password(self, user_id: int, password_hash: str) -> Deferred[None]:
        """
        Replace a user's password hash and end every token of theirs.
        """
        return self.writer.submit(_reset_password_txn, user_id, password_hash)


# Transactions.  Each runs in a pool thread; the *_txn functions given to
# the writer take the commit's timestamp as their second argument.


def _migrate_txn(txn: Transaction, files: list[tuple[int, str]]) -> None:
    txn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    )
    version = 0
    if txn.fetchone()[0]:
        txn.execute("SELECT max(version) FROM schema_version")
        version = txn.fetchone()[0] or 0
    # A file may make a table again (sql/008): foreign keys are off while
    # the files run (SQLite ignores the pragma inside a transaction), and
    # checked before each commits.
    txn.execute("PRAGMA foreign_keys = OFF")
    try:
        for number, sql in files:
            if number <= version:
                continue
            try:
                txn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n;"
                    f"DELETE FROM schema_version; INSERT INTO schema_version VALUES ({number});"
                )
                txn.execute("PRAGMA foreign_key_check")
                broken = txn.fetchall()
                if broken:
                    raise RuntimeError(f"schema file {number} breaks foreign keys: {broken[:5]}")
                txn.execute("COMMIT")
            except BaseException:
                txn.execute("ROLLBACK")
                raise
    finally:
        txn.execute("PRAGMA foreign_keys = ON")


def _migrate_postgresql_txn(txn: Transaction, files: list[tuple[int, str]]) -> None:
    # One transaction for every file (PostgreSQL's DDL is transactional),
    # under the commit lock: processes starting together upgrade once.
    txn.execute("BEGIN IMMEDIATE")
    try:
        txn.execute("SELECT to_regclass('schema_version') IS NOT NULL", ())
        version = 0
        if txn.fetchone()[0]:
            txn.execute("SELECT max(version) FROM schema_version", ())
            version = txn.fetchone()[0] or 0
        for number, sql in files:
            if number <= version:
                continue
            txn.execute(sql)
            txn.execute("DELETE FROM schema_version", ())
            txn.execute("INSERT INTO schema_version VALUES (?)", (number,))
        txn.execute("COMMIT")
    except BaseException:
        txn.execute("ROLLBACK")
        raise


def _load_directory_txn(txn: Transaction) -> Snapshot:
    directory = Snapshot()
    txn.execute("BEGIN")
    txn.execute("SELECT id, username FROM users")
    directory.users = dict(txn.fetchall())
    txn.execute("SELECT id FROM users WHERE disabled = 1")
    directory.disabled = [row[0] for row in txn.fetchall()]
    txn.execute(
        "SELECT user_id, friend_id FROM friendships"
        " WHERE state = 'accepted' AND user_id < friend_id"
    )
    directory.friendships = txn.fetchall()
    txn.execute("SELECT id, name FROM rooms")
    directory.rooms = dict(txn.fetchall())
    txn.execute("SELECT id, owner_id FROM rooms WHERE owner_id IS NOT NULL")
    directory.owners = dict(txn.fetchall())
    txn.execute("SELECT id, topic FROM rooms WHERE topic <> ''")
    directory.topics = dict(txn.fetchall())
    txn.execute("SELECT room_id, user_id, joined_message_id FROM room_members")
    directory.members = txn.fetchall()
    txn.execute("SELECT room_id, user_id FROM room_members WHERE role = 'moderator'")
    directory.moderators = txn.fetchall()
    txn.execute("SELECT room_id, user_id FROM room_bans")
    directory.bans = txn.fetchall()
    return directory


def _load_user_txn(txn: Transaction, user_id: int) -> Snapshot:
    directory = Snapshot()
    txn.execute("BEGIN")
    txn.execute("SELECT id, username FROM users WHERE id = ?", (user_id,))
    directory.users = dict(txn.fetchall())
    txn.execute("SELECT id FROM users WHERE id = ? AND disabled = 1", (user_id,))
    directory.disabled = [row[0] for row in txn.fetchall()]
    txn.execute(
        "SELECT user_id, friend_id FROM friendships WHERE state = 'accepted' AND user_id = ?",
        (user_id,),
    )
    directory.friendships = txn.fetchall()
    return directory


def _load_room_txn(txn: Transaction, room_id: int) -> Snapshot:
    directory = Snapshot()
    txn.execute("BEGIN")
    txn.execute("SELECT id, name FROM rooms WHERE id = ?", (room_id,))
    directory.rooms = dict(txn.fetchall())
    txn.execute("SELECT id, owner_id FROM rooms WHERE id = ? AND owner_id IS NOT NULL", (room_id,))
    directory.owners = dict(txn.fetchall())
    txn.execute("SELECT id, topic FROM rooms WHERE id = ? AND topic <> ''", (room_id,))
    directory.topics = dict(txn.fetchall())
    txn.execute(
        "SELECT room_id, user_id, joined_message_id FROM room_members WHERE room_id = ?",
        (room_id,),
    )
    directory.members = txn.fetchall()
    txn.execute(
        "SELECT room_id, user_id FROM room_members WHERE room_id = ? AND role = 'moderator'",
        (room_id,),
    )
    directory.moderators = txn.fetchall()
    txn.execute("SELECT room_id, user_id FROM room_bans WHERE room_id = ?", (room_id,))
    directory.bans = txn.fetchall()
    return directory


def _named_txn(txn: Transaction, table: str, name: str) -> int | None:
    column = "username" if table == "users" else "name"
    txn.execute(f"SELECT id FROM {table} WHERE {column} = ? COLLATE NOCASE", (name,))
    row = txn.fetchone()
    return None if row is None else int(row[0])


def _last_message_id_txn(txn: Transaction) -> int:
    txn.execute("SELECT max(id) FROM messages")
    return int(txn.fetchone()[0] or 0)


def _messages_after_txn(txn: Transaction, after: int, limit: int) -> list[StoredMessage]:
    txn.execute(f"{_MESSAGE_SELECT} WHERE m.id > ? ORDER BY m.id LIMIT ?", (after, limit))
    return _messages(txn)


_Record = TypeVar("_Record", bound="DataclassInstance")


def _rows(txn: Transaction, record: type[_Record]) -> list[_Record]:
    """
    @param record: a dataclass whose fields are named as the columns of the
        statement C{txn} ran last (fields with a default after the last
        column's may be left out).
    @return: that statement's rows, each as a C{record} built by column
        name (not position).
    @raise ValueError: when the columns are not the fields.
    """
    columns = tuple(column[0] for column in txn.description)
    pick = _pickers.get((record, columns))
    if pick is None:
        names = [f.name for f in fields(record)][: len(columns)]
        if sorted(names) != sorted(columns) or any(
            f.default is MISSING and f.default_factory is MISSING
            for f in fields(record)[len(columns) :]
        ):
            raise ValueError(f"columns {columns} do not match the fields of {record.__name__}")
        pick = itemgetter(*[columns.index(name) for name in names])
        if len(names) == 1:
            pick = _one(pick)
        _pickers[record, columns] = pick
    return [record(*pick(row)) for row in txn.fetchall()]


def _one(get: Callable[[Sequence[Any]], Any]) -> Callable[[Sequence[Any]], tuple[Any]]:
    return lambda row: (get(row),)


# (record, its statement's columns) -> the function from a row to the
# record's fields in order: one per statement shape, computed once.
_pickers: dict[tuple[type[Any], tuple[str, ...]], Callable[[Sequence[Any]], Sequence[Any]]] = {}


def _credentials_txn(txn: Transaction, username: str) -> Credentials | None:
    txn.execute(
        "SELECT id, username, password_hash FROM users WHERE username = ? COLLATE NOCASE",
        (username,),
    )
    found = _rows(txn, Credentials)
    return found[0] if found else None


def _accounts_txn(txn: Transaction, name_contains: str) -> list[Account]:
    txn.execute(
        "SELECT id, username, created_at, last_seen_at, disabled FROM users"
        " WHERE instr(lower(username), lower(?)) > 0 ORDER BY id",
        (name_contains,),
    )
    return [Account(i, n, c, s, bool(d)) for i, n, c, s, d in txn.fetchall()]


def _totals_txn(txn: Transaction) -> Totals:
    txn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM rooms),"
        " (SELECT count(*) FROM messages)"
    )
    return Totals(*txn.fetchone())


def _database_size_txn(txn: Transaction) -> int:
    txn.execute("SELECT pg_database_size(current_database())")
    return int(txn.fetchone()[0])


def _dicts(txn: Transaction, sql: str, arguments: Sequence[Any]) -> list[dict[str, Any]]:
    txn.execute(sql, arguments)
    columns = [column[0] for column in txn.description]
    return [dict(zip(columns, row, strict=True)) for row in txn.fetchall()]


def _export_txn(txn: Transaction, user_id: int) -> dict[str, Any]:
    txn.execute("BEGIN")
    (account,) = _dicts(
        txn,
        "SELECT id, username, created_at, last_seen_at, disabled FROM users WHERE id = ?",
        (user_id,),
    )
    account["disabled"] = bool(account["disabled"])
    messages = _dicts(
        txn,
        "SELECT id, CASE target_type WHEN 0 THEN 'user' ELSE 'room' END AS target_type,"
        " target_id, kind, body, created_at AS time, edited_at, deleted, reply_to"
        " FROM messages WHERE sender_id = ? ORDER BY id",
        (user_id,),
    )
    for message in messages:
        message["deleted"] = bool(message["deleted"])
    exported = {
        "account": account,
        "friendships": _dicts(
            txn,
            "SELECT u.id, u.username, f.state, f.created_at,"
            " CASE WHEN f.state = 'accepted' THEN NULL WHEN f.user_id = ? THEN 'sent'"
            " ELSE 'received' END AS request"
            " FROM friendships AS f JOIN users AS u"
            " ON u.id = CASE WHEN f.user_id = ? THEN f.friend_id ELSE f.user_id END"
            " WHERE (f.user_id = ? OR (f.friend_id = ? AND f.state = 'pending'))"
            " ORDER BY f.created_at, u.id",
            (user_id, user_id, user_id, user_id),
        ),
        "rooms": _dicts(
            txn,
            "SELECT r.id, r.name, CASE WHEN r.owner_id = ? THEN 'owner' ELSE m.role END"
            " AS role, j.created_at AS joined_at FROM room_members AS m"
            " JOIN rooms AS r ON r.id = m.room_id"
            " LEFT JOIN messages AS j ON j.id = m.joined_message_id"
            " WHERE m.user_id = ? ORDER BY r.id",
            (user_id, user_id),
        ),
        "messages": messages,
        "reactions": _dicts(
            txn,
            "SELECT message_id, emoji FROM reactions WHERE user_id = ? ORDER BY id",
            (user_id,),
        ),
        "files": _dicts(
            txn,
            "SELECT id, name, size, mime, sha256, created_at FROM files"
            " WHERE uploader_id = ? ORDER BY created_at, id",
            (user_id,),
        ),
    }
    txn.execute("COMMIT")
    return exported


def _friend_requests_txn(txn: Transaction, user_id: int) -> list[int]:
    txn.execute(
        "SELECT user_id FROM friendships WHERE friend_id = ? AND state = 'pending'"
        " ORDER BY created_at, user_id",
        (user_id,),
    )
    return [row[0] for row in txn.fetchall()]


# Reads of messages by conversation name the target type as a literal
# (0 is wire.PRIVATE, 1 is wire.ROOM), the condition of the partial index
# the read needs.  With a bound parameter SQLite still picks the index, but
# it recompiles the statement at each run to check the value, and keeps the
# term as a filter, reading every row's target_type from the table: a count
# that could be answered from the index alone reads the table instead (ten
# times slower).  tests.test_store checks that the literals are the
# constants.


def _json_list(txn: Transaction, *names: str) -> str:
    """
    @return: a query of the rows of a JSON array given as a parameter, in
        order (C{position}): its numbers as a column C{names[0]}, or, for
        an array of arrays, their numbers as columns C{names}.
    """
    if is_postgresql_txn(txn):
        if len(names) == 1:
            return (
                f"SELECT e.position, e.value::bigint AS {names[0]}"
                " FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS e(value, position)"
            )
        columns = ", ".join(f"(e.value ->> {n})::bigint AS {name}" for n, name in enumerate(names))
        return (
            f"SELECT e.position, {columns}"
            " FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS e(value, position)"
        )
    if len(names) == 1:
        return f"SELECT key AS position, value AS {names[0]} FROM json_each(?)"
    columns = ", ".join(f"value ->> {n} AS {name}" for n, name in enumerate(names))
    return f"SELECT key AS position, {columns} FROM json_each(?)"


def _unread_txn(
    txn: Transaction, user_id: int, friend_ids: list[int], rooms: dict[int, int]
) -> list[Unread]:
    # Two statements whatever the number of conversations: each walks the
    # user's conversations (a JSON array, in the caller's order), counts each
    # one's unread messages with one range of its partial index, and looks
    # up the newest message only of those with something unread.
    txn.execute("BEGIN")
    txn.execute(
        "WITH friends AS MATERIALIZED ("
        "   SELECT f.position, f.friend_id,"
        "     min(f.friend_id, ?) AS low, max(f.friend_id, ?) AS high,"
        "     (SELECT count(*) FROM messages"
        "      WHERE target_type = 0"
        "        AND min(sender_id, target_id) = min(f.friend_id, ?)"
        "        AND max(sender_id, target_id) = max(f.friend_id, ?)"
        "        AND id > coalesce(r.message_id, 0) AND sender_id = f.friend_id"
        "        AND deleted = 0) AS count,"
        "     coalesce(r.message_id, 0) AS marker"
        f"   FROM ({_json_list(txn, 'friend_id')}) AS f"
        "   LEFT JOIN read_markers AS r"
        "     ON r.user_id = ? AND r.target_type = ? AND r.target_id = f.friend_id"
        " )"
        " SELECT ? AS target_type, friend_id AS target_id, count,"
        "   (SELECT count(*) FROM mentions AS mn JOIN messages AS m ON m.id = mn.message_id"
        "    WHERE mn.user_id = ? AND mn.message_id > marker"
        "      AND m.target_type = 0 AND m.sender_id = friend_id AND m.target_id = ?)"
        "   AS mentions,"
        "   (SELECT max(id) FROM messages"
        "    WHERE target_type = 0 AND min(sender_id, target_id) = low"
        "      AND max(sender_id, target_id) = high) AS last_message_id"
        " FROM friends WHERE count > 0 ORDER BY position",
        (
            user_id,
            user_id,
            user_id,
            user_id,
            json.dumps(friend_ids),
            user_id,
            PRIVATE,
            PRIVATE,
            user_id,
            user_id,
        ),
    )
    found = _rows(txn, Unread)
    txn.execute(
        "WITH joined AS MATERIALIZED ("
        "   SELECT j.position, j.room_id,"
        "     (SELECT count(*) FROM messages"
        "      WHERE target_type = 1 AND target_id = j.room_id"
        "        AND id >= max(coalesce(r.message_id, 0) + 1, j.joined)"
        "        AND sender_id <> ? AND deleted = 0) AS count,"
        "     max(coalesce(r.message_id, 0) + 1, j.joined) AS first_unread"
        f"   FROM ({_json_list(txn, 'room_id', 'joined')}) AS j"
        "   LEFT JOIN read_markers AS r"
        "     ON r.user_id = ? AND r.target_type = ? AND r.target_id = j.room_id"
        " )"
        " SELECT ? AS target_type, room_id AS target_id, count,"
        "   (SELECT count(*) FROM mentions AS mn JOIN messages AS m ON m.id = mn.message_id"
        "    WHERE mn.user_id = ? AND mn.message_id >= first_unread"
        "      AND m.target_type = 1 AND m.target_id = room_id) AS mentions,"
        "   (SELECT max(id) FROM messages"
        "    WHERE target_type = 1 AND target_id = joined.room_id) AS last_message_id"
        " FROM joined WHERE count > 0 ORDER BY position",
        (user_id, json.dumps(list(rooms.items())), user_id, ROOM, ROOM, user_id),
    )
    found += _rows(txn, Unread)
    return found


# Messages with their quotes, in one statement; "m" is the message.  Its
# columns are those of _MESSAGE_COLUMNS, in that order: the fields of a
# StoredMessage up to deleted, then the quote's.
_MESSAGE_SELECT = (
    "SELECT m.id, m.client_msg_id, m.sender_id, m.target_type, m.target_id, m.kind, m.body,"
    " m.created_at AS time, m.edited_at, m.deleted, m.reply_to,"
    " q.sender_id AS quote_sender_id,"
    f" substr(q.body, 1, {QUOTE_LENGTH}) AS quote_body,"
    " q.deleted AS quote_deleted,"
    " f.id AS file_id, f.name AS file_name, f.size AS file_size, f.mime AS file_mime,"
    " f.sha256 AS file_sha256, f.uploader_id AS file_uploader_id"
    " FROM messages AS m LEFT JOIN messages AS q ON q.id = m.reply_to"
    " LEFT JOIN files AS f ON f.id = m.file_id"
)
_MESSAGE_COLUMNS = (
    *(f.name for f in fields(StoredMessage)[:10]),
    "reply_to",
    "quote_sender_id",
    "quote_body",
    "quote_deleted",
    *(f"file_{f.name}" for f in fields(StoredFile)),
)

# The mentions and reactions of a page's messages, in one statement: rows
# of (message id, emoji or NULL for a mention, user id), a message's
# mentions first, by user, then its reactions in the order of their emoji.
_EXTRAS_SELECT = (
    "SELECT message_id, NULL, user_id, 0 FROM mentions WHERE message_id IN ({marks})"
    " UNION ALL"
    " SELECT message_id, emoji, user_id, since FROM reactions WHERE message_id IN ({marks})"
    " ORDER BY 1, 4, 3"
)


def _messages(txn: Transaction) -> list[StoredMessage]:
    """
    @return: the messages L{_MESSAGE_SELECT} just selected, in its order,
        with their mentions and reactions: one more statement, however
        many messages.  Rows are read by position, a page being thousands
        of values; the columns are checked by name against
        L{_MESSAGE_COLUMNS} first.
    """
    columns = tuple(column[0] for column in txn.description)
    if columns != _MESSAGE_COLUMNS:
        raise ValueError(f"columns {columns} are not {_MESSAGE_COLUMNS}")
    rows = txn.fetchall()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    marks = ", ".join("?" * len(ids))
    txn.execute(_EXTRAS_SELECT.format(marks=marks), ids + ids)
    mentions: dict[int, list[int]] = {}
    reactions: dict[int, dict[str, list[int]]] = {}
    for message_id, emoji, user_id, _ in txn.fetchall():
        if emoji is None:
            mentions.setdefault(message_id, []).append(user_id)
        else:
            reactions.setdefault(message_id, {}).setdefault(emoji, []).append(user_id)
    messages = []
    for row in rows:
        message_id, reply_to = row[0], row[10]
        quote = None
        if reply_to is not None:
            deleted = bool(row[13])
            quote = StoredQuote(reply_to, row[11], "" if deleted else row[12], deleted)
        held = reactions.get(message_id)
        stored_file = None if row[14] is None else StoredFile(*row[14:20])
        messages.append(
            StoredMessage(
                message_id,
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                bool(row[9]),
                quote,
                tuple(mentions[message_id]) if message_id in mentions else (),
                tuple((e, tuple(users)) for e, users in held.items()) if held else (),
                stored_file,
            )
        )
    return messages


def _message_txn(txn: Transaction, message_id: int) -> StoredMessage | None:
    txn.execute(f"{_MESSAGE_SELECT} WHERE m.id = ?", (message_id,))
    found = _messages(txn)
    return found[0] if found else None


def _private_history_txn(
    txn: Transaction, low: int, high: int, before: int | None, after: int | None, limit: int
) -> tuple[list[StoredMessage], bool]:
    # One row more than asked tells whether more exist in that direction.
    if after is not None:
        txn.execute(
            f"{_MESSAGE_SELECT} WHERE m.target_type = 0"
            " AND min(m.sender_id, m.target_id) = ? AND max(m.sender_id, m.target_id) = ?"
            " AND m.id > ? ORDER BY m.id LIMIT ?",
            (low, high, after, limit + 1),
        )
        return _page_after(_messages(txn), limit)
    txn.execute(
        f"{_MESSAGE_SELECT} WHERE m.target_type = 0"
        " AND min(m.sender_id, m.target_id) = ? AND max(m.sender_id, m.target_id) = ?"
        " AND m.id < ? ORDER BY m.id DESC LIMIT ?",
        (low, high, wire.MAX_INT if before is None else before, limit + 1),
    )
    return _page_before(_messages(txn), limit)


def _room_history_txn(
    txn: Transaction, room_id: int, since: int, before: int | None, after: int | None, limit: int
) -> tuple[list[StoredMessage], bool]:
    # One row more than asked tells whether more exist in that direction.
    if after is not None:
        txn.execute(
            f"{_MESSAGE_SELECT} WHERE m.target_type = 1 AND m.target_id = ? AND m.id >= ?"
            " AND m.id > ? ORDER BY m.id LIMIT ?",
            (room_id, since, after, limit + 1),
        )
        return _page_after(_messages(txn), limit)
    txn.execute(
        f"{_MESSAGE_SELECT} WHERE m.target_type = 1 AND m.target_id = ? AND m.id >= ?"
        " AND m.id < ? ORDER BY m.id DESC LIMIT ?",
        (room_id, since, wire.MAX_INT if before is None else before, limit + 1),
    )
    return _page_before(_messages(txn), limit)


@dataclass(frozen=True, slots=True)
class Scope:
    """
    What one user may search: their private conversations with
    C{friend_ids}, and the messages of C{rooms} from their latest join on.
    """

    user_id: int
    friend_ids: frozenset[int]
    rooms: dict[int, int]

    def readable(self, message_id: int, sender_id: int, target_type: int, target_id: int) -> bool:
        """
        @return: whether the message is in this scope (as
            L{chatd.directory.Directory.can_read} would say for the user).
        """
        if target_type == ROOM:
            joined = self.rooms.get(target_id)
            return joined is not None and joined <= message_id
        if sender_id == self.user_id:
            return target_id in self.friend_ids
        return target_id == self.user_id and sender_id in self.friend_ids


# A term this short has no trigram in the index: it is looked for in the
# folded text of the messages the other terms (or the scope) select.
_TRIGRAM = 3
# Candidates are read from the index in batches of this many.
_SEARCH_BATCH = 256


def _search_txn(
    txn: Transaction, scope: Scope, terms: tuple[str, ...], before: int, limit: int
) -> tuple[list[StoredMessage], bool]:
    if any("\0" in term for term in terms):
        return [], False  # no message holds NUL (PostgreSQL's text cannot)
    long = [term for term in terms if len(term) >= _TRIGRAM]
    short = [term for term in terms if len(term) < _TRIGRAM]
    txn.execute("BEGIN")
    if long:
        ids = _indexed_matches(txn, scope, long, short, before, limit + 1)
    else:
        ids = _scanned_matches(txn, scope, short, before, limit + 1)
    found: list[StoredMessage] = []
    if ids:
        marks = ", ".join("?" * len(ids))
        txn.execute(f"{_MESSAGE_SELECT} WHERE m.id IN ({marks}) ORDER BY m.id DESC", ids)
        found = _messages(txn)
    txn.execute("COMMIT")
    return found[:limit], len(found) > limit


def _contains(terms: Sequence[str]) -> str:
    return "".join(" AND instr(t.body, ?) > 0" for _ in terms)


def _indexed_matches(
    txn: Transaction,
    scope: Scope,
    long: Sequence[str],
    short: Sequence[str],
    before: int,
    wanted: int,
) -> list[int]:
    """
    @return: the ids of the newest C{wanted} messages in C{scope} below
        C{before} whose folded text contains every term: the candidates are
        the rows of the trigram index holding every trigram of each term of
        C{long} (three characters or more), newest first; C{instr} keeps
        those that hold each term of C{long} and C{short}.
    """
    if is_postgresql_txn(txn):
        # pg_trgm's index answers LIKE '%term%' (sql/postgresql).
        likes = " AND ".join("t.body LIKE ?" for _ in long)
        txn.execute(
            "SELECT t.id, m.sender_id, m.target_type, m.target_id"
            " FROM message_text AS t JOIN messages AS m ON m.id = t.id"
            f" WHERE {likes} AND t.id < ?{_contains(short)} ORDER BY t.id DESC",
            (*(_like_pattern(term) for term in long), before, *short),
        )
    else:
        _match_trigrams(txn, long, short, before)
    ids: list[int] = []
    readable = scope.readable
    while len(ids) < wanted:
        rows = txn.fetchmany(_SEARCH_BATCH)
        if not rows:
            break
        ids += [row[0] for row in rows if readable(*row)]
    return ids[:wanted]


def _like_pattern(term: str) -> str:
    """
    @return: the LIKE pattern of the texts that contain C{term}.
    """
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _match_trigrams(
    txn: Transaction, long: Sequence[str], short: Sequence[str], before: int
) -> None:
    """
    Select, on SQLite, the messages below C{before} whose text holds every
    trigram of each term of C{long} (FTS5), newest first, keeping those
    that hold each term of C{long} and C{short}.
    """
    trigrams = dict.fromkeys(
        term[i : i + _TRIGRAM] for term in long for i in range(len(term) - _TRIGRAM + 1)
    )
    # Each trigram is one FTS5 string: whatever it holds is literal text.
    match = " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)
    terms = [*long, *short]
    txn.execute(
        "SELECT s.rowid, m.sender_id, m.target_type, m.target_id"
        " FROM message_search AS s CROSS JOIN messages AS m ON m.id = s.rowid"
        " CROSS JOIN message_text AS t ON t.id = s.rowid"
        f" WHERE message_search MATCH ? AND s.rowid < ?{_contains(terms)}"
        " ORDER BY s.rowid DESC",
        (match, before, *terms),
    )


def _scanned_matches(
    txn: Transaction, scope: Scope, short: Sequence[str], before: int, wanted: int
) -> list[int]:
    """
    @return: the ids of the newest C{wanted} messages in C{scope} below
        C{before} whose folded text contains every one of C{short} (each
        shorter than a trigram): each conversation is read newest first,
        until it gave C{wanted} of them or ended.
    """
    contains = _contains(short)
    ids: list[int] = []
    for room_id, since in scope.rooms.items():
        txn.execute(
            "SELECT m.id FROM messages AS m CROSS JOIN message_text AS t ON t.id = m.id"
            f" WHERE m.target_type = 1 AND m.target_id = ? AND m.id >= ? AND m.id < ?{contains}"
            " ORDER BY m.id DESC LIMIT ?",
            (room_id, since, before, *short, wanted),
        )
        ids += [row[0] for row in txn.fetchall()]
    for friend_id in scope.friend_ids:
        txn.execute(
            "SELECT m.id FROM messages AS m CROSS JOIN message_text AS t ON t.id = m.id"
            " WHERE m.target_type = 0"
            " AND min(m.sender_id, m.target_id) = ? AND max(m.sender_id, m.target_id) = ?"
            f" AND m.id < ?{contains} ORDER BY m.id DESC LIMIT ?",
            (min(scope.user_id, friend_id), max(scope.user_id, friend_id), before, *short, wanted),
        )
        ids += [row[0] for row in txn.fetchall()]
    ids.sort(reverse=True)
    return ids[:wanted]


def _page_after(messages: list[StoredMessage], limit: int) -> tuple[list[StoredMessage], bool]:
    """
    @param messages: up to C{limit + 1} messages, oldest first.
    @return: the oldest C{limit}, and whether there were more.
    """
    return messages[:limit], len(messages) > limit


def _page_before(messages: list[StoredMessage], limit: int) -> tuple[list[StoredMessage], bool]:
    """
    @param messages: up to C{limit + 1} messages, newest first.
    @return: the newest C{limit}, oldest first, and whether there were more.
    """
    page = messages[:limit]
    page.reverse()
    return page, len(messages) > limit


@single_change
def _add_user_txn(txn: Transaction, stamp: str, username: str, password_hash: str) -> int:
    txn.execute(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (username, password_hash, stamp),
    )
    row = txn.fetchone()
    if row is None:
        raise ChatError(wire.USERNAME_TAKEN)
    return int(row[0])


def _add_token_txn(
    txn: Transaction, stamp: str, user_id: int, token_hash: bytes, oldest: str = ""
) -> None:
    txn.execute("DELETE FROM tokens WHERE user_id = ? AND used_at < ?", (user_id, oldest))
    txn.execute(
        "INSERT INTO tokens (hash, user_id, created_at, used_at) VALUES (?, ?, ?, ?)",
        (token_hash, user_id, stamp, stamp),
    )


def _token_txn(txn: Transaction, token_hash: bytes) -> tuple[int, str] | None:
    txn.execute("SELECT user_id, used_at FROM tokens WHERE hash = ?", (token_hash,))
    row = txn.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


@single_change
def _use_token_txn(txn: Transaction, stamp: str, token_hash: bytes) -> None:
    """
    Note that a token was used now (it may have ended meanwhile: then
    nothing changes, and the session it started ends with its next resume).
    """
    txn.execute("UPDATE tokens SET used_at = ? WHERE hash = ?", (stamp, token_hash))


@single_change
def _end_token_txn(txn: Transaction, stamp: str, token_hash: bytes) -> None:
    txn.execute("DELETE FROM tokens WHERE hash = ?", (token_hash,))


def _add_file_txn(
    txn: Transaction,
    stamp: str,
    file_id: str,
    uploader_id: int,
    name: str,
    size: int,
    mime: str,
    sha256: str,
) -> StoredFile:
    txn.execute(
        "INSERT INTO files (id, uploader_id, name, size, mime, sha256, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (file_id, uploader_id, name, size, mime, sha256, stamp),
    )
    return StoredFile(file_id, name, size, mime, sha256, uploader_id)


def _file_usage_txn(txn: Transaction, user_id: int) -> int:
    txn.execute("SELECT coalesce(sum(size), 0) FROM files WHERE uploader_id = ?", (user_id,))
    used: int = txn.fetchone()[0]
    return used


def _readable_file_txn(txn: Transaction, file_id: str, scope: Scope) -> StoredFile | None:
    txn.execute("BEGIN")
    txn.execute(
        "SELECT id, name, size, mime, sha256, uploader_id FROM files WHERE id = ?", (file_id,)
    )
    row = txn.fetchone()
    readable = row is not None and row[5] == scope.user_id
    if row is not None and not readable:
        txn.execute(
            "SELECT id, sender_id, target_type, target_id FROM messages WHERE file_id = ?",
            (file_id,),
        )
        readable = any(scope.readable(*message) for message in txn.fetchall())
    txn.execute("COMMIT")
    return StoredFile(*row) if readable else None


@single_change
def _expire_unsent_files_txn(txn: Transaction, stamp: str, before: str) -> None:
    txn.execute("DELETE FROM files WHERE sent = 0 AND created_at < ?", (before,))


def _stored_digests_txn(txn: Transaction) -> set[str]:
    txn.execute("SELECT DISTINCT sha256 FROM files")
    return {row[0] for row in txn.fetchall()}


def _reset_password_txn(txn: Transaction, stamp: str, user_id: int, password_hash: str) -> None:
    txn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    txn.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))


def _set_disabled_txn(txn: Transaction, stamp: str, user_id: int, disabled: bool) -> None:
    txn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
    if not disabled:
        txn.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))


@single_change
def _user_seen_txn(txn: Transaction, stamp: str, user_id: int) -> None:
    txn.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", (stamp, user_id))


def _change_password_txn(
    txn: Transaction, stamp: str, user_id: int, password_hash: str, token_hash: bytes
) -> None:
    txn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    txn.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
    _add_token_txn(txn, stamp, user_id, token_hash)


@single_change
def _set_password_hash_txn(txn: Transaction, stamp: str, user_id: int, password_hash: str) -> None:
    txn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))


# The arguments of one message to store: sender_id, target_type,
# target_id, kind, body, client_msg_id, reply_to, the first message id the
# sender may read in the conversation (for reply_to), the mentions and the
# file.
_NewMessage = tuple[
    int, int, int, str, str, "str | None", "int | None", int, tuple[int, ...], "str | None"
]


def _add_messages_txn(
    txn: Transaction, stamp: str, calls: list[_NewMessage]
) -> list[tuple[StoredMessage, bool]]:
    """
    Store several new messages (each call as for L{_add_message_txn}) with
    one statement.  The ids are given, not chosen by SQLite, so that one
    C{INSERT} serves them all: only this connection writes, so the next id
    is the largest ever stored plus one (C{sqlite_sequence}: the largest
    may have been deleted since, by retention).

    @raise sqlite3.IntegrityError: one repeats a C{client_msg_id} (each then
        runs alone, and that one gets the message stored before).
    @raise ChatError: one answers a message it may not (each then runs
        alone, and that one fails).
    """
    quotes = [
        None if call[6] is None else _quote_for_reply_txn(txn, *call[:3], call[6], call[7])
        for call in calls
    ]
    files = [None if call[9] is None else _attach_file_txn(txn, call[0], call[9]) for call in calls]
    rows = [
        (message_id, *call[:7], stamp, call[9])
        for message_id, call in zip(_new_message_ids(txn, len(calls)), calls, strict=True)
    ]
    txn.executemany(
        "INSERT INTO messages (id, sender_id, target_type, target_id, kind, body,"
        " client_msg_id, reply_to, created_at, file_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    _index(txn, [(row[0], row[5]) for row in rows if row[4] != "system"])
    mentioned = [
        (row[0], user_id) for row, call in zip(rows, calls, strict=True) for user_id in call[8]
    ]
    if mentioned:
        txn.executemany("INSERT INTO mentions (message_id, user_id) VALUES (?, ?)", mentioned)
    return [
        (
            StoredMessage(
                row[0], row[6], *row[1:6], stamp, reply_to=quote, mentions=call[8], file=stored
            ),
            True,
        )
        for row, call, quote, stored in zip(rows, calls, quotes, files, strict=True)
    ]


def _new_message_ids(txn: Transaction, count: int) -> list[int]:
    """
    @return: the ids of C{count} new messages, ascending: after the largest
        ever stored (SQLite's C{sqlite_sequence}, which only this connection
        writes: the largest may have been deleted since, by retention); on
        PostgreSQL, from the sequence, while the commit lock is held.
    """
    if is_postgresql_txn(txn):
        txn.execute(
            "SELECT nextval('messages_id_seq') FROM generate_series(1, ?) ORDER BY 1", (count,)
        )
        return [row[0] for row in txn.fetchall()]
    txn.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'")
    (last,) = txn.fetchone()
    return list(range(last + 1, last + 1 + count))


@together(_add_messages_txn)
def _add_message_txn(
    txn: Transaction,
    stamp: str,
    sender_id: int,
    target_type: int,
    target_id: int,
    kind: str,
    body: str,
    client_msg_id: str | None,
    reply_to: int | None = None,
    since: int = 0,
    mentions: tuple[int, ...] = (),
    file_id: str | None = None,
) -> tuple[StoredMessage, bool]:
    """
    Store a message, or find the one its sender already stored with this
    C{client_msg_id}.

    @param reply_to: the message it answers, which must be a text or file
        message of the same conversation, not deleted, from C{since} on.
    @param mentions: the ids of the users it mentions, ascending.
    @param file_id: the file a C{file} message carries.
    @return: the message, and whether it is new.
    @raise ChatError: C{no_such_message} for a C{reply_to} it may not answer;
        C{no_such_file} for a file that is not the sender's.
    """
    if client_msg_id is not None:
        txn.execute(
            f"{_MESSAGE_SELECT} WHERE m.sender_id = ? AND m.client_msg_id = ?",
            (sender_id, client_msg_id),
        )
        repeated = _messages(txn)
        if repeated:
            return repeated[0], False
    quote = (
        None
        if reply_to is None
        else _quote_for_reply_txn(txn, sender_id, target_type, target_id, reply_to, since)
    )
    stored_file = None if file_id is None else _attach_file_txn(txn, sender_id, file_id)
    txn.execute(
        "INSERT INTO messages (sender_id, target_type, target_id, kind, body, client_msg_id,"
        " reply_to, created_at, file_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (sender_id, target_type, target_id, kind, body, client_msg_id, reply_to, stamp, file_id),
    )
    (message_id,) = txn.fetchone()
    if kind != "system":
        _index(txn, [(message_id, body)])
    if mentions:
        txn.executemany(
            "INSERT INTO mentions (message_id, user_id) VALUES (?, ?)",
            [(message_id, user_id) for user_id in mentions],
        )
    message = StoredMessage(
        message_id,
        client_msg_id,
        sender_id,
        target_type,
        target_id,
        kind,
        body,
        stamp,
        reply_to=quote,
        mentions=mentions,
        file=stored_file,
    )
    return message, True


def _attach_file_txn(txn: Transaction, sender_id: int, file_id: str) -> StoredFile:
    """
    @return: the file C{file_id} for a new message of C{sender_id}, now
        marked as sent.
    @raise ChatError: C{no_such_file} unless C{sender_id} uploaded it.
    """
    txn.execute(
        "SELECT id, name, size, mime, sha256, uploader_id FROM files WHERE id = ?", (file_id,)
    )
    row = txn.fetchone()
    if row is None or row[5] != sender_id:
        raise ChatError(wire.NO_SUCH_FILE)
    txn.execute("UPDATE files SET sent = 1 WHERE id = ? AND sent = 0", (file_id,))
    return StoredFile(*row)


def _release_files_txn(txn: Transaction, file_ids: Iterable[str]) -> None:
    """
    Remove the files among C{file_ids} that were sent and that no message
    carries any more (PROTOCOL.md section 10): their content goes with the
    next sweep of the files folder (L{chatd.files}).
    """
    txn.executemany(
        "DELETE FROM files WHERE id = ? AND sent = 1"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE file_id = files.id)",
        [(file_id,) for file_id in file_ids],
    )


def _index(txn: Transaction, texts: list[tuple[int, str]]) -> None:
    """
    Add the texts of new messages, as C{(id, body)}, to the search index
    (C{sql/003_search.sql}), case-folded.
    """
    if texts:
        folded = [(message_id, body.casefold()) for message_id, body in texts]
        txn.executemany("INSERT INTO message_text (id, body) VALUES (?, ?)", folded)
        if not is_postgresql_txn(txn):  # PostgreSQL's index follows the table
            txn.executemany("INSERT INTO message_search (rowid, body) VALUES (?, ?)", folded)


def _unindex(txn: Transaction, message_id: int) -> None:
    """
    Remove a message's text from the search index.
    """
    if not is_postgresql_txn(txn):
        txn.execute(
            "INSERT INTO message_search (message_search, rowid, body)"
            " SELECT 'delete', id, body FROM message_text WHERE id = ?",
            (message_id,),
        )
    txn.execute("DELETE FROM message_text WHERE id = ?", (message_id,))


def _quote_for_reply_txn(
    txn: Transaction, sender_id: int, target_type: int, target_id: int, reply_to: int, since: int
) -> StoredQuote:
    """
    @return: the Quote of C{reply_to} for a new message of C{sender_id} to
        C{target_type}/C{target_id}.
    @raise ChatError: C{no_such_message} unless C{reply_to} is a text or file
        message of that conversation, not deleted, from C{since} on.
    """
    txn.execute(
        f"SELECT sender_id, target_type, target_id, kind, deleted, substr(body, 1, {QUOTE_LENGTH})"
        " FROM messages WHERE id = ?",
        (reply_to,),
    )
    row = txn.fetchone()
    if row is not None:
        quoted_sender, quoted_type, quoted_target, kind, deleted, text = row
        if target_type == ROOM:
            same = quoted_type == ROOM and quoted_target == target_id
        else:
            same = quoted_type == PRIVATE and {quoted_sender, quoted_target} == {
                sender_id,
                target_id,
            }
        if same and reply_to >= since and kind != "system" and not deleted:
            return StoredQuote(reply_to, quoted_sender, text, False)
    raise ChatError(wire.NO_SUCH_MESSAGE)


def _edit_message_txn(
    txn: Transaction, stamp: str, message_id: int, body: str, mentions: tuple[int, ...]
) -> tuple[StoredMessage, bool]:
    """
    Replace a message's text (the old text is overwritten: no copy is
    kept) and its mentions.

    @return: the message as now stored, and whether it changed (an edit to
        the same text changes nothing).
    @raise ChatError: C{no_such_message}; C{not_allowed} once deleted or
        for a system message.
    """
    message = _message_txn(txn, message_id)
    if message is None:
        raise ChatError(wire.NO_SUCH_MESSAGE)
    if message.deleted or message.kind == "system":
        raise ChatError(wire.NOT_ALLOWED)
    if message.body == body:
        return message, False
    txn.execute(
        "UPDATE messages SET body = ?, edited_at = ? WHERE id = ?", (body, stamp, message_id)
    )
    _unindex(txn, message_id)
    _index(txn, [(message_id, body)])
    txn.execute("DELETE FROM mentions WHERE message_id = ?", (message_id,))
    txn.executemany(
        "INSERT INTO mentions (message_id, user_id) VALUES (?, ?)",
        [(message_id, user_id) for user_id in mentions],
    )
    edited = _message_txn(txn, message_id)
    assert edited is not None
    return edited, True


def _delete_message_txn(txn: Transaction, stamp: str, message_id: int) -> None:
    """
    Make a message a tombstone: its text is overwritten with C{""}, its
    quote, mentions, reactions and file go (the file is removed when no
    other message carries it); its id, time, kind, sender and target stay.

    @raise ChatError: C{no_such_message}; C{not_allowed} when already
        deleted or for a system message.
    """
    txn.execute("SELECT kind, deleted, file_id FROM messages WHERE id = ?", (message_id,))
    row = txn.fetchone()
    if row is None:
        raise ChatError(wire.NO_SUCH_MESSAGE)
    kind, deleted, file_id = row
    if deleted or kind == "system":
        raise ChatError(wire.NOT_ALLOWED)
    txn.execute(
        "UPDATE messages SET body = '', deleted = 1, reply_to = NULL, edited_at = NULL,"
        " file_id = NULL WHERE id = ?",
        (message_id,),
    )
    if file_id is not None:
        _release_files_txn(txn, [file_id])
    _unindex(txn, message_id)
    txn.execute("DELETE FROM mentions WHERE message_id = ?", (message_id,))
    txn.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))


#: Distinct emoji one message may hold.
MAX_EMOJI = 20


def _react_txn(
    txn: Transaction, stamp: str, message_id: int, user_id: int, emoji: str, on: bool
) -> tuple[StoredMessage, bool]:
    """
    Add (C{on}) or remove C{user_id}'s C{emoji} on a message.

    @return: the message with its reactions as now stored, and whether they
        changed (doing what is already done changes nothing).
    @raise ChatError: C{no_such_message}; C{not_allowed} for a deleted or
        system message, or for a new emoji beyond L{MAX_EMOJI}.
    """
    txn.execute("SELECT kind, deleted FROM messages WHERE id = ?", (message_id,))
    row = txn.fetchone()
    if row is None:
        raise ChatError(wire.NO_SUCH_MESSAGE)
    kind, deleted = row
    if deleted or kind == "system":
        raise ChatError(wire.NOT_ALLOWED)
    if on:
        txn.execute(
            "SELECT since, user_id = ? FROM reactions WHERE message_id = ? AND emoji = ?"
            " ORDER BY user_id = ? DESC LIMIT 1",
            (user_id, message_id, emoji, user_id),
        )
        held = txn.fetchone()
        changed = held is None or not held[1]
        if held is None:
            txn.execute(
                "SELECT count(DISTINCT emoji) FROM reactions WHERE message_id = ?", (message_id,)
            )
            if txn.fetchone()[0] >= MAX_EMOJI:
                raise ChatError(wire.NOT_ALLOWED, f"A message holds at most {MAX_EMOJI} emoji.")
        if changed:
            txn.execute(
                "INSERT INTO reactions (message_id, emoji, user_id, since) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (message_id, emoji, user_id, 0 if held is None else held[0]),
            )
            (reaction_id,) = txn.fetchone()
            if held is None:
                txn.execute("UPDATE reactions SET since = id WHERE id = ?", (reaction_id,))
    else:
        txn.execute(
            "DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND user_id = ?",
            (message_id, emoji, user_id),
        )
        changed = txn.rowcount == 1
    message = _message_txn(txn, message_id)
    assert message is not None
    return message, changed


def _add_friend_txn(txn: Transaction, stamp: str, user_id: int, target_id: int) -> str:
    txn.execute(
        "SELECT user_id, state FROM friendships"
        " WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
        (user_id, target_id, target_id, user_id),
    )
    rows = dict(txn.fetchall())
    if "accepted" in rows.values():
        raise ChatError(wire.ALREADY_FRIENDS)
    if user_id in rows:
        return "repeat"
    if target_id in rows:
        _resolve_friend_request_txn(txn, stamp, user_id, target_id, True)
        return "accepted"
    txn.execute(
        "INSERT INTO friendships (user_id, friend_id, state, created_at)"
        " VALUES (?, ?, 'pending', ?)",
        (user_id, target_id, stamp),
    )
    return "sent"


def _resolve_friend_request_txn(
    txn: Transaction, stamp: str, user_id: int, requester_id: int, accept: bool
) -> None:
    txn.execute(
        "DELETE FROM friendships WHERE user_id = ? AND friend_id = ? AND state = 'pending'",
        (requester_id, user_id),
    )
    if txn.rowcount != 1:
        raise ChatError(wire.NO_PENDING_REQUEST)
    if accept:
        txn.executemany(
            "INSERT INTO friendships (user_id, friend_id, state, created_at)"
            " VALUES (?, ?, 'accepted', ?)",
            [(user_id, requester_id, stamp), (requester_id, user_id, stamp)],
        )


def _remove_friend_txn(txn: Transaction, stamp: str, user_id: int, friend_id: int) -> None:
    txn.execute(
        "DELETE FROM friendships WHERE state = 'accepted'"
        " AND ((user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?))",
        (user_id, friend_id, friend_id, user_id),
    )
    if txn.rowcount == 0:
        raise ChatError(wire.NOT_FRIENDS)


def _create_room_txn(
    txn: Transaction, stamp: str, name: str, creator_id: int, text: str
) -> StoredMessage:
    txn.execute(
        "INSERT INTO rooms (name, owner_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (name, creator_id, stamp),
    )
    row = txn.fetchone()
    if row is None:
        raise ChatError(wire.ROOM_EXISTS)
    return _join_room_txn(txn, stamp, int(row[0]), creator_id, creator_id, text)


def _join_room_txn(
    txn: Transaction, stamp: str, room_id: int, actor_id: int, user_id: int, text: str
) -> StoredMessage:
    txn.execute(
        "SELECT user_id FROM room_members WHERE room_id = ? AND user_id IN (?, ?)",
        (room_id, actor_id, user_id),
    )
    members = {row[0] for row in txn.fetchall()}
    if user_id in members:
        raise ChatError(wire.ALREADY_IN_ROOM)
    if actor_id != user_id and actor_id not in members:
        raise ChatError(wire.NOT_IN_ROOM)
    txn.execute("SELECT 1 FROM room_bans WHERE room_id = ? AND user_id = ?", (room_id, user_id))
    if txn.fetchone():
        raise ChatError(wire.NOT_ALLOWED)
    message, _ = _add_message_txn(txn, stamp, actor_id, ROOM, room_id, "system", text, None)
    txn.execute(
        "INSERT INTO room_members (room_id, user_id, joined_message_id) VALUES (?, ?, ?)",
        (room_id, user_id, message.id),
    )
    # The first to join a room that nobody is in owns it.
    txn.execute(
        "UPDATE rooms SET owner_id = ? WHERE id = ? AND owner_id IS NULL", (user_id, room_id)
    )
    return message


def _leave_txn(txn: Transaction, room_id: int, user_id: int) -> None:
    """
    End a membership (and with it any role).

    @raise ChatError: C{not_in_room}.
    """
    txn.execute("DELETE FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, user_id))
    if txn.rowcount != 1:
        raise ChatError(wire.NOT_IN_ROOM)


def _quit_room_txn(
    txn: Transaction, stamp: str, room_id: int, user_id: int, text: str, new_owner: int | None
) -> StoredMessage:
    _leave_txn(txn, room_id, user_id)
    txn.execute(
        "UPDATE rooms SET owner_id = ? WHERE id = ? AND owner_id = ?",
        (new_owner, room_id, user_id),
    )
    if txn.rowcount and new_owner is not None:
        txn.execute(
            "UPDATE room_members SET role = 'member' WHERE room_id = ? AND user_id = ?",
            (room_id, new_owner),
        )
    message, _ = _add_message_txn(txn, stamp, user_id, ROOM, room_id, "system", text, None)
    return message


def _set_topic_txn(
    txn: Transaction, stamp: str, room_id: int, actor_id: int, topic: str, text: str
) -> StoredMessage:
    txn.execute("UPDATE rooms SET topic = ? WHERE id = ?", (topic, room_id))
    message, _ = _add_message_txn(txn, stamp, actor_id, ROOM, room_id, "system", text, None)
    return message


@single_change
def _set_role_txn(txn: Transaction, stamp: str, room_id: int, user_id: int, role: str) -> None:
    txn.execute(
        "UPDATE room_members SET role = ? WHERE room_id = ? AND user_id = ?",
        (role, room_id, user_id),
    )
    if txn.rowcount != 1:
        raise ChatError(wire.NOT_IN_ROOM)


def _kick_txn(
    txn: Transaction, stamp: str, room_id: int, actor_id: int, user_id: int, ban: bool, text: str
) -> StoredMessage:
    _leave_txn(txn, room_id, user_id)
    if ban:
        txn.execute(
            "INSERT INTO room_bans (room_id, user_id, banned_by, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (room_id, user_id, actor_id, stamp),
        )
    message, _ = _add_message_txn(txn, stamp, actor_id, ROOM, room_id, "system", text, None)
    return message


@single_change
def _unban_txn(txn: Transaction, stamp: str, room_id: int, user_id: int) -> None:
    txn.execute("DELETE FROM room_bans WHERE room_id = ? AND user_id = ?", (room_id, user_id))
    if txn.rowcount != 1:
        raise ChatError(wire.NOT_ALLOWED)


@single_change
def _mark_read_txn(
    txn: Transaction,
    stamp: str,
    user_id: int,
    target_type: int,
    target_id: int,
    message_id: int,
) -> None:
    txn.execute(
        "INSERT INTO read_markers (user_id, target_type, target_id, message_id)"
        " VALUES (?, ?, ?, min(?, (SELECT coalesce(max(id), 0) FROM messages)))"
        " ON CONFLICT (user_id, target_type, target_id) DO UPDATE"
        " SET message_id = max(read_markers.message_id, excluded.message_id)",
        (user_id, target_type, target_id, message_id),
    )


# Retention: the one job that deletes old messages (Store.expire_messages).


def _expire_messages_txn(txn: Transaction, stamp: str, before: str, batch: int) -> int:
    """
    Delete the oldest messages, at most C{batch}, whose C{created_at} is
    below C{before}, and what is theirs: their reactions, their mentions,
    their text in the search index (C{sql/003_search.sql}), and the files
    that no message carries any more (whose content the next sweep of the
    files folder removes, L{chatd.files}).

    Replies to a deleted message stay, with their own text, and lose their
    quote (C{reply_to} becomes C{NULL}): there is nothing left to quote, and
    a quote shown as C{deleted} would tell of a deletion nobody made.

    The messages go in id order: the job reads the first C{batch} ids and
    deletes them up to the first that is not old enough.  Ids grow in commit
    order and C{created_at} is the commit time, so these are the oldest
    messages, found on the primary key with no index on C{created_at}; and
    what stays is always every message from some id on: a conversation's
    history begins later, and never has holes.  (A clock that went back may
    leave a message stamped later than the one after it: it then holds back
    those after it until it is old enough itself.)

    C{room_members.joined_message_id} and C{read_markers.message_id} are
    bounds, not references: they keep their ids, and keep working, when
    the message is gone.

    @return: how many messages were deleted.
    """
    txn.execute("SELECT id, created_at FROM messages ORDER BY id LIMIT ?", (batch,))
    last = None
    for message_id, created_at in txn.fetchall():
        if created_at >= before:
            break
        last = message_id
    if last is None:
        return 0
    # Every message left with an id up to last is one of this batch, so each
    # statement is one range of an index, whatever the batch holds.  The
    # children go first: foreign keys refuse a message that rows point at.
    txn.execute("UPDATE messages SET reply_to = NULL WHERE reply_to <= ? AND id > ?", (last, last))
    txn.execute("DELETE FROM reactions WHERE message_id <= ?", (last,))
    txn.execute("DELETE FROM mentions WHERE message_id <= ?", (last,))
    # An external-content FTS5 index forgets a row only when told its old
    # text ('delete'), which message_text still holds.
    if not is_postgresql_txn(txn):
        txn.execute(
            "INSERT INTO message_search (message_search, rowid, body)"
            " SELECT 'delete', id, body FROM message_text WHERE id <= ?",
            (last,),
        )
    txn.execute("DELETE FROM message_text WHERE id <= ?", (last,))
    txn.execute(
        "SELECT DISTINCT file_id FROM messages WHERE file_id IS NOT NULL AND id <= ?", (last,)
    )
    carried = [row[0] for row in txn.fetchall()]
    txn.execute("DELETE FROM messages WHERE id <= ?", (last,))
    deleted: int = txn.rowcount
    _release_files_txn(txn, carried)
    return deleted
