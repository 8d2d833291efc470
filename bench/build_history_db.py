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
    hundred thousand messages;
  - L{build_search_db}: the database of shape (h): a million messages of
    English and Chinese words over 200 rooms and 2000 users, each user in
    20 rooms, for searches.

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

from chatd.database import register_functions
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
    register_functions(connection)
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


def index_texts(connection: sqlite3.Connection) -> None:
    """
    Put the messages inserted into the search index as C{sql/003_search.sql}
    does at an upgrade: in one go, much faster than one at a time.
    """
    connection.execute(
        "INSERT INTO message_text (id, body)"
        " SELECT id, casefold(body) FROM messages WHERE kind <> 'system' AND deleted = 0"
    )
    connection.execute("INSERT INTO message_search (message_search) VALUES ('rebuild')")


def finish(connection: sqlite3.Connection) -> None:
    """
    Index the texts (L{index_texts}), commit, check the foreign keys, switch
    to WAL as chatd runs it, close.

    @raise RuntimeError: if a row refers to one that does not exist.
    """
    index_texts(connection)
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


#: Words of the messages of L{build_search_db}, most frequent first.
ENGLISH = (
    "the to and you it is that of for in we this on have be not can just so with but"
    " do are at what my will if me was all about no there get ok yes up out now like"
    " know think one time here today good need see how when new they then some later"
    " meeting project link code review test build release bug fix issue report class"
    " homework exam teacher lecture notes question answer please thanks sorry great"
    " nice maybe check send share file doc server database client design plan week"
    " monday friday morning night coffee team call chat room group idea update status"
    " done ready wait help want look find day next last first old big small fast slow"
    " deadline slides lunch deploy tomorrow weekend library paper draft demo screen"
).split()
CHINESE = (
    "我们 你好 今天 明天 作业 老师 同学 上课 考试 问题 时间 会议 项目 代码 测试 谢谢"
    " 没有 可以 他们 现在 已经 还是 什么 怎么 知道 觉得 晚上 早上 中午 吃饭 图书馆"
    " 实验 报告 文件 服务器 数据 朋友 周末 电影 音乐 下午 作品 讨论 复习 课程 答案"
    " 笔记 资料 程序 网络 设计 学习 准备 结束 开始 通知 安排 地点 教室 宿舍 食堂"
).split()
#: The searches of shape (h): what each looks for, and its query.
SEARCHES = {
    "common word": "meeting",
    "rare word": "zorvani",
    "two words": "project deadline",
    "CJK, 2 characters": "作业",
}


def _zipf(count: int, exponent: float) -> list[float]:
    """
    @return: the cumulative weights of C{count} ranks whose frequencies
        fall as C{1 / rank ** exponent}, for L{random.Random.choices}.
    """
    total, weights = 0.0, []
    for rank in range(1, count + 1):
        total += 1 / rank**exponent
        weights.append(total)
    return weights


def _rare_words(count: int, rng: random.Random) -> list[str]:
    """
    @return: C{count} distinct made-up words of three syllables, the rare
        words of L{build_search_db}'s texts (L{SEARCHES}'s rare word among
        them, at a rank where it occurs a few dozen times in a million
        messages).
    """
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    words = {a + b + c for a in syllables for b in syllables for c in syllables}
    chosen = rng.sample(sorted(words - {SEARCHES["rare word"]}), count)
    chosen.insert(count // 2, SEARCHES["rare word"])
    return chosen


@dataclass(frozen=True, slots=True)
class Searchers:
    """
    What a built search database holds, for the benchmark to query.

    @ivar usernames: accounts that each are in C{rooms_per_user} rooms.
    @ivar messages: how many messages the database holds.
    """

    usernames: list[str]
    messages: int


def build_search_db(
    path: str,
    messages: int,
    password_hash: str,
    users: int = 2000,
    rooms: int = 200,
    rooms_per_user: int = 20,
    chinese_share: float = 0.25,
    private_share: float = 0.1,
    seed: int = 3,
) -> Searchers:
    """
    Build the database of shape (h) at C{path}: C{users} users
    (C{srch0}, ...), each a member of C{rooms_per_user} rooms chosen at
    random among C{rooms} from the room's start, users C{2k} and C{2k+1}
    friends, then C{messages} messages (counting the system ones) to a
    random room from one of its members or, with probability
    C{private_share}, between a pair of friends.  A text is 3-12 English
    words, or with probability C{chinese_share} 3-10 Chinese words written
    without spaces, each word drawn by Zipf's law from L{ENGLISH} or
    L{CHINESE} followed by 30000 rare words.  The search index is built as
    chatd's schema keeps it.

    @return: what the benchmark needs to know about it.
    """
    rng = random.Random(seed)
    connection = create_database(path)
    names = [f"srch{i}" for i in range(users)]
    user_ids = insert_users(connection, names, password_hash)
    created = stamp(EPOCH)
    pairs = list(zip(user_ids[::2], user_ids[1::2], strict=False))
    connection.executemany(
        "INSERT INTO friendships (user_id, friend_id, state, created_at)"
        " VALUES (?, ?, 'accepted', ?)",
        [row for a, b in pairs for row in ((a, b, created), (b, a, created))],
    )
    room_ids = list(range(1, rooms + 1))
    connection.executemany(
        "INSERT INTO rooms (id, name, owner_id, created_at) VALUES (?, ?, ?, ?)",
        [(room_id, f"sroom{room_id - 1}", None, created) for room_id in room_ids],
    )
    members: dict[int, list[int]] = {room_id: [] for room_id in room_ids}
    for user_id in user_ids:
        for room_id in rng.sample(room_ids, rooms_per_user):
            members[room_id].append(user_id)
    system: list[tuple[int, int, int, str]] = []
    joined: list[tuple[int, int, int]] = []
    for room_id in room_ids:
        for index, user_id in enumerate(members[room_id]):
            verb = "created" if index == 0 else "joined"
            system.append(
                (len(system) + 1, user_id, room_id, f"{names[user_id - 1]} {verb} the room")
            )
            joined.append((room_id, user_id, len(system)))
    connection.executemany(
        "INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)"
        f" VALUES (?, ?, 1, ?, 'system', ?, '{created}')",
        system,
    )
    connection.executemany(
        "INSERT INTO room_members (room_id, user_id, joined_message_id) VALUES (?, ?, ?)", joined
    )
    connection.execute(
        "UPDATE rooms SET owner_id = (SELECT sender_id FROM messages"
        " WHERE target_type = 1 AND target_id = rooms.id ORDER BY id LIMIT 1)"
    )
    english = ENGLISH + _rare_words(30000, rng)
    english_weights = _zipf(len(english), 1.0)
    chinese_weights = _zipf(len(CHINESE), 1.0)
    room_members = [members[room_id] for room_id in room_ids]

    def texts() -> Iterator[tuple[int, int, int, int, str, str]]:
        rand, choices = rng.random, rng.choices
        second, prefix = -1, ""
        for message_id in range(len(system) + 1, messages + 1):
            if rand() < private_share:
                a, b = pairs[int(rand() * len(pairs))]
                sender, target_type, target = (a, 0, b) if rand() < 0.5 else (b, 0, a)
            else:
                index = int(rand() * rooms)
                people = room_members[index]
                sender, target_type, target = people[int(rand() * len(people))], 1, index + 1
            if rand() < chinese_share:
                count = 3 + int(rand() * 8)
                body = "".join(choices(CHINESE, cum_weights=chinese_weights, k=count)) + "。"
            else:
                count = 3 + int(rand() * 10)
                body = " ".join(choices(english, cum_weights=english_weights, k=count))
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
                f"{prefix}{message_id % 100 * 10:03d}Z",
            )

    with _indexes_dropped(connection, "messages"):
        connection.executemany(
            "INSERT INTO messages (id, sender_id, target_type, target_id, kind, body, created_at)"
            " VALUES (?, ?, ?, ?, 'text', ?, ?)",
            texts(),
        )
    finish(connection)
    searchers = [names[user_id - 1] for user_id in user_ids[: users : users // 20]]
    return Searchers(usernames=searchers, messages=max(messages, len(system)))


def main() -> None:
    """
    Build a history database from the command line.
    """
    parser = argparse.ArgumentParser(description="Build the chatd benchmark's history database.")
    parser.add_argument("path", help="the database file to create (it must not exist)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="no replies, mentions or reactions")
    parser.add_argument("--search", action="store_true", help="the database of shape (h)")
    args = parser.parse_args()
    from argon2 import PasswordHasher

    started = time.monotonic()
    if args.search:
        searchers = build_search_db(args.path, args.messages, PasswordHasher().hash(PASSWORD))
        print(
            f"{args.path}: {searchers.messages} messages; log in as {searchers.usernames[0]}"
            f" / {PASSWORD} ({time.monotonic() - started:.1f} s)"
        )
        return
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
