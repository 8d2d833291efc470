"""
Build chatd databases for the benchmark directly with sqlite3, fast.

  - L{seed_users}: a fresh database holding only accounts, so that a
    benchmark logs its users in without registering them (registration,
    one argon2id hash each, is not what it measures);
  - L{build_history_db}: the database of shape (e): users, friendships,
    rooms and memberships consistent with each other, and a million
    messages, most in rooms and the rest in private conversations, in the
    order a busy server would have stored them;
  - L{build_login_db}: the database of shape (g): one account with 500
    friends and 200 rooms, unread messages in most of them, among a few
    hundred thousand messages.

The schema is chatd's own (C{chatd.store.schema_files}), applied the way
chatd applies it, so chatd starts on these files as on its own.

    python -m bench.build_history_db /tmp/history.sqlite3 --messages 1000000
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from chatd.store import schema_files

#: The password of every account these databases hold.
PASSWORD = "benchpass1"
#: The first commit time of a built database (2026-01-01T00:00:00Z).
EPOCH = 1767225600.0


def stamp(seconds: float) -> str:
    """
    @return: C{seconds} since the epoch as chatd stores times:
        C{2026-01-01T00:00:00.000Z}.
    """
    whole = int(seconds)
    milliseconds = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{milliseconds:03d}Z"


def create_database(path: str) -> sqlite3.Connection:
    """
    Create the database at C{path} with chatd's schema, for a bulk load:
    no journal and no fsync until L{finish} (a failed build is thrown away).

    @return: the open connection, inside a transaction.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -262144")
    version = 0
    for number, sql in schema_files():
        connection.executescript(sql)
        version = number
    connection.execute("BEGIN")
    connection.execute("DELETE FROM schema_version")
    connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
    return connection


def finish(connection: sqlite3.Connection) -> None:
    """
    Commit, check the foreign keys, switch to WAL as chatd runs it, close.

    @raise RuntimeError: if a row refers to one that does not exist.
    """
    connection.execute("COMMIT")
    broken = connection.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"rows break foreign keys: {broken[:5]}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()


def insert_users(
    connection: sqlite3.Connection, names: Sequence[str], password_hash: str
) -> list[int]:
    """
    Insert accounts that all have the password whose hash is
    C{password_hash}.

    @return: their ids, in the order of C{names}.
    """
    created = stamp(EPOCH)
    first = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM users").fetchone()[0]
    connection.executemany(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
        [(first + i, name, password_hash, created) for i, name in enumerate(names)],
    )
    return list(range(first, first + len(names)))


def seed_users(path: str, names: Sequence[str], password_hash: str) -> None:
    """
    Create a database at C{path} that holds only the accounts C{names}.
    """
    connection = create_database(path)
    insert_users(connection, names, password_hash)
    finish(connection)


def add_users(path: str, names: Sequence[str], password_hash: str) -> None:
    """
    Add the accounts C{names} to the database at C{path}, made by
    L{seed_users}, while no server runs on it.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN")
    insert_users(connection, names, password_hash)
    connection.execute("COMMIT")
    connection.close()


@contextmanager
def _indexes_dropped(connection: sqlite3.Connection, table: str) -> Iterator[None]:
    """
    Drop the indexes of C{table} for a bulk insert and build them again
    after it: building an index over a million rows at once takes a third
    of the time that keeping it up to date row by row does.
    """
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master"
        " WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,),
    ).fetchall()
    for name, _ in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    yield
    for _, sql in indexes:
        connection.execute(sql)


@dataclass(frozen=True, slots=True)
class History:
    """
    What a built history database holds, for the benchmark to query.

    @ivar username: an account that is a member of every room since its
        start (and so sees all of each room's history).
    @ivar room_id: the room the benchmark pages through.
    @ivar room_messages: how many messages that room holds.
    @ivar messages: how many messages the database holds.
    """

    username: str
    room_id: int
    room_messages: int
    messages: int


def build_history_db(
    path: str,
    messages: int,
    password_hash: str,
    users: int = 100,
    rooms: int = 20,
    private_share: float = 0.2,
    seed: int = 1,
    plain: bool = False,
) -> History:
    """
    Build a database of C{messages} messages at C{path}.

    Every user is in every room from the room's start: room C{r} is created
    by user 1 ("hist0 created the room") and joined by the others, each
    join a system message as chatd stores it.  Users C{2k} and C{2k+1} are
    friends.  Then C{messages} text messages (counting the system ones),
    each to a random room or, with probability C{private_share}, between a
    random pair of friends, one every 10 ms.  Unless C{plain}, they carry
    what version 2 adds as a busy room would: one in ten answers the
    conversation's previous message (a reply, quoted with every read), one
    in eight mentions someone, and one in four has one to three reactions.
    Every user has read everything (a read marker at the last message of
    each conversation), so a login's unread count is quick.

    @return: what the benchmark needs to know about it.
    """
    rng = random.Random(seed)
    connection = create_database(path)
    names = [f"hist{i}" for i in range(users)]
    user_ids = insert_users(connection, names, password_hash)
    created = stamp(EPOCH)
    connection.executemany(
        "INSERT INTO friendships (user_id, friend_id, state, created_at)"
        " VALUES (?, ?, 'accepted', ?)",
        [
            row
            for a, b in zip(user_ids[::2], user_ids[1::2], strict=False)
            for row in ((a, b, created), (b, a, created))
        ],
    )
    room_ids = list(range(1, rooms + 1))
    connection.executemany(
        "INSERT INTO rooms (id, name, created_at) VALUES (?, ?, ?)",
        [(room_id, f"hroom{room_id - 1}", created) for room_id in room_ids],
    )
    rows: list[tuple[int, int, int, int, str, str, str]] = []
    members: list[tuple[int, int, int]] = []
    for room_id in room_ids:
        for index, user_id in enumerate(user_ids):
            message_id = len(rows) + 1
            text = f"{names[index]} {'created' if index == 0 else 'joined'} the room"
            rows.append((message_id, user_id, 1, room_id, "system", text, created))
            members.append((room_id, user_id, message_id))
    connection.executemany(
        "INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)"
        " VALUES (?, ?, ?, ?, 'system', ?, ?)",
        [(m, s, tt, t, body, at) for m, s, tt, t, _, body, at in rows],
    )
    connection.executemany(
        "INSERT INTO room_members (room_id, user_id, joined_message_id) VALUES (?, ?, ?)",
        members,
    )
    first_text = len(rows) + 1
    pairs = list(zip(user_ids[::2], user_ids[1::2], strict=False))
    # The last message of each room (index 0 unused) and of each pair.
    room_last = [0] * (rooms + 1)
    pair_last = [0] * len(pairs)
    room_count = [0] * (rooms + 1)

    reactions: list[tuple[int, str, int, int]] = []
    mentions: list[tuple[int, int]] = []
    emoji = ["👍", "❤️", "😂", "🎉", "👀", "ok"]

    def texts() -> Iterator[tuple[int, int, int, int, str, int | None, str]]:
        # Plain arithmetic on rng.random(): rng.choice would double the
        # time of the whole build.
        rand = rng.random
        fillers = [" lorem ipsum dolor sit amet" * k for k in range(1, 5)]
        second = -1
        prefix = ""
        for message_id in range(first_text, messages + 1):
            if rand() < private_share:
                pair = int(rand() * len(pairs))
                a, b = pairs[pair]
                sender, target = (a, b) if rand() < 0.5 else (b, a)
                readers: Sequence[int] = (a, b)
                previous, pair_last[pair] = pair_last[pair], message_id
                target_type = 0
            else:
                target = room_ids[int(rand() * rooms)]
                sender = user_ids[int(rand() * users)]
                readers = user_ids
                room_count[target] += 1
                previous, room_last[target] = room_last[target], message_id
                target_type = 1
            reply_to = None
            body = f"message {message_id} from {sender}{fillers[message_id & 3]}"
            if not plain:
                if previous and rand() < 0.1:
                    reply_to = previous
                if rand() < 0.125:
                    mentioned = readers[int(rand() * len(readers))]
                    if mentioned != sender:
                        body = f"@{names[mentioned - user_ids[0]]} {body}"
                        mentions.append((message_id, mentioned))
                if rand() < 0.25:
                    first = len(reactions) + 1
                    for n in range(1 + int(rand() * 3)):
                        reactions.append(
                            (message_id, emoji[n], readers[int(rand() * len(readers))], first + n)
                        )
            # One message every 10 ms.
            if message_id // 100 != second:
                second = message_id // 100
                prefix = stamp(EPOCH + second)[:-4]
            yield (
                message_id,
                sender,
                target_type,
                target,
                body,
                reply_to,
                f"{prefix}{message_id % 100 * 10:03d}Z",
            )

    with _indexes_dropped(connection, "messages"):
        connection.executemany(
            "INSERT INTO messages"
            " (id, sender_id, target_type, target_id, kind, body, reply_to, created_at)"
            " VALUES (?, ?, ?, ?, 'text', ?, ?, ?)",
            texts(),
        )
    connection.executemany(
        "INSERT INTO reactions (message_id, emoji, user_id, since)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        reactions,
    )
    connection.executemany("INSERT INTO mentions (message_id, user_id) VALUES (?, ?)", mentions)
    markers = [
        row
        for (a, b), m in zip(pairs, pair_last, strict=True)
        if m
        for row in ((a, 0, b, m), (b, 0, a, m))
    ]
    markers += [
        (user_id, 1, room_id, room_last[room_id])
        for room_id in room_ids
        if room_last[room_id]
        for user_id in user_ids
    ]
    connection.executemany(
        "INSERT INTO read_markers (user_id, target_type, target_id, message_id)"
        " VALUES (?, ?, ?, ?)",
        markers,
    )
    finish(connection)
    return History(
        username=names[0],
        room_id=room_ids[0],
        room_messages=room_count[room_ids[0]] + users,
        messages=max(messages, len(rows)),
    )


@dataclass(frozen=True, slots=True)
class Logins:
    """
    What a built login database holds, for the benchmark to report.

    @ivar username: the account that logs in: friends with every other
        account, and a member of every room but the background ones.
    @ivar friends: how many friends it has.
    @ivar rooms: how many rooms it is in.
    @ivar messages: how many messages the database holds.
    """

    username: str
    friends: int
    rooms: int
    messages: int


def build_login_db(
    path: str,
    password_hash: str,
    friends: int = 500,
    rooms: int = 200,
    room_messages: int = 100,
    private_messages: int = 20,
    background: int = 200_000,
    seed: int = 7,
) -> Logins:
    """
    Build the database of shape (g) at C{path}: one account, C{lg0}, with
    C{friends} friends (C{lgf0}, ...) and C{rooms} rooms.

    Room C{r} is created by a friend, joined by three more, and holds a few
    messages before C{lg0} joins it (which C{lg0} does not see) and
    C{room_messages} after, from its members, C{lg0} included.  Each
    friend and C{lg0} exchange C{private_messages} messages.  The
    conversations are interleaved at random, as a busy server would have
    stored them, after C{background} messages in rooms C{lg0} is not in
    (so that a query that scanned instead of seeking would show).  C{lg0}
    has read: everything in a sixth of its conversations, nothing (no
    marker) in another sixth, and up to a random point in the rest.

    @return: what the benchmark needs to know about it.
    """
    rng = random.Random(seed)
    connection = create_database(path)
    created = stamp(EPOCH)
    names = ["lg0"] + [f"lgf{i}" for i in range(friends)]
    user_ids = insert_users(connection, names, password_hash)
    me, friend_ids = user_ids[0], user_ids[1:]
    connection.executemany(
        "INSERT INTO friendships (user_id, friend_id, state, created_at)"
        " VALUES (?, ?, 'accepted', ?)",
        [row for f in friend_ids for row in ((me, f, created), (f, me, created))],
    )
    background_rooms = 20
    room_ids = list(range(1, rooms + background_rooms + 1))
    connection.executemany(
        "INSERT INTO rooms (id, name, created_at) VALUES (?, ?, ?)",
        [(room_id, f"lroom{room_id}", created) for room_id in room_ids],
    )
    # Each conversation's messages in order: (sender, target_type, target,
    # kind, body); a join is a system message that records a membership.
    Message = tuple[int, int, int, str, str]
    conversations: list[list[Message]] = []
    joins: dict[tuple[int, int], int] = {}  # (room, user) -> index in its conversation
    for room_id in room_ids[:rooms]:
        members = rng.sample(friend_ids, 4)
        events: list[Message] = [(members[0], 1, room_id, "system", "created the room")]
        for member in members[1:]:
            joins[room_id, member] = len(events)
            events.append((member, 1, room_id, "system", "joined the room"))
        joins[room_id, members[0]] = 0
        for i in range(rng.randint(0, 10)):
            events.append((rng.choice(members), 1, room_id, "text", f"early {i}"))
        joins[room_id, me] = len(events)
        events.append((me, 1, room_id, "system", "joined the room"))
        members.append(me)
        for i in range(room_messages):
            events.append((rng.choice(members), 1, room_id, "text", f"message {i}"))
        conversations.append(events)
    for friend_id in friend_ids:
        conversations.append(
            [
                (sender, 0, target, "text", f"private {i}")
                for i in range(private_messages)
                for sender, target in [rng.choice(((me, friend_id), (friend_id, me)))]
            ]
        )
    rows: list[tuple[int, int, int, int, str, str, str]] = []
    for i in range(background):
        room_id = room_ids[rooms + i % background_rooms]
        rows.append((i + 1, rng.choice(friend_ids), 1, room_id, "text", f"background {i}", ""))
    # Interleave the conversations, each in its own order.
    turns = [c for c, events in enumerate(conversations) for _ in events]
    rng.shuffle(turns)
    ids: list[list[int]] = [[] for _ in conversations]
    next_of = [0] * len(conversations)
    for c in turns:
        sender, target_type, target, kind, body = conversations[c][next_of[c]]
        next_of[c] += 1
        message_id = len(rows) + 1
        ids[c].append(message_id)
        rows.append((message_id, sender, target_type, target, kind, body, ""))
    with _indexes_dropped(connection, "messages"):
        connection.executemany(
            "INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row[:6], stamp(EPOCH + row[0] / 100)) for row in rows],
        )
    # Room r is conversation r - 1; the background rooms have no members.
    connection.executemany(
        "INSERT INTO room_members (room_id, user_id, joined_message_id) VALUES (?, ?, ?)",
        [
            (room_id, user_id, ids[room_id - 1][index])
            for (room_id, user_id), index in joins.items()
        ],
    )
    markers = []
    targets = [(1, room_id) for room_id in room_ids[:rooms]] + [(0, f) for f in friend_ids]
    for (target_type, target), conversation_ids in zip(targets, ids, strict=True):
        draw = rng.random()
        if draw < 1 / 6:
            markers.append((me, target_type, target, conversation_ids[-1]))
            continue
        if draw < 2 / 6:
            continue
        markers.append((me, target_type, target, rng.choice(conversation_ids[:-1])))
    connection.executemany(
        "INSERT INTO read_markers (user_id, target_type, target_id, message_id)"
        " VALUES (?, ?, ?, ?)",
        markers,
    )
    finish(connection)
    return Logins(username=names[0], friends=friends, rooms=rooms, messages=len(rows))


def main() -> None:
    """
    Build a history database from the command line.
    """
    parser = argparse.ArgumentParser(description="Build the chatd benchmark's history database.")
    parser.add_argument("path", help="the database file to create (it must not exist)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="no replies, mentions or reactions")
    args = parser.parse_args()
    from argon2 import PasswordHasher

    started = time.monotonic()
    history = build_history_db(
        args.path, args.messages, PasswordHasher().hash(PASSWORD), plain=args.plain
    )
    print(
        f"{args.path}: {history.messages} messages, room {history.room_id} holds "
        f"{history.room_messages}; log in as {history.username} / {PASSWORD} "
        f"({time.monotonic() - started:.1f} s)"
    )


if __name__ == "__main__":
    main()
