"""
The in-memory directory: users, friendships, rooms and memberships.

Every message send checks friendship or membership; keeping them in memory
means a send costs no read query.  The directory is loaded from the store
once at start, and kept current by L{chatd.server.ChatServer}, the only code
that changes those tables: additions are applied after their transaction
commits, removals as soon as they are submitted (and put back if the
transaction fails), so the directory never allows what the database would
not.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Final

from chatd.store import Snapshot, StoredMessage
from chatd.wire import PRIVATE

OWNER: Final = "owner"
MODERATOR: Final = "moderator"
MEMBER: Final = "member"


@dataclass(slots=True)
class Room:
    """
    A room, its members and their roles (PROTOCOL.md section 12).

    @ivar owner_id: the id of its owner (its creator, or whom ownership
        passed to), or L{None} while nobody is in it.
    @ivar topic: what the room is for, C{""} when unset.
    @ivar members: user id -> the id of the system message of their latest
        join, from which on they see the room's history.
    @ivar moderators: the members the owner made moderators.
    @ivar banned: who may not join again until unbanned.
    """

    id: int
    name: str
    owner_id: int | None = None
    topic: str = ""
    members: dict[int, int] = field(default_factory=dict)
    moderators: set[int] = field(default_factory=set)
    banned: set[int] = field(default_factory=set)

    def role(self, user_id: int) -> str:
        """
        @return: the role of the member C{user_id}.
        """
        if user_id == self.owner_id:
            return OWNER
        return MODERATOR if user_id in self.moderators else MEMBER

    def moderates(self, user_id: int) -> bool:
        """
        @return: whether C{user_id} is the owner or a moderator: who may set
            the topic, remove members, lift bans and delete any message.
        """
        return user_id == self.owner_id or user_id in self.moderators

    def may_remove(self, user_id: int, target_id: int) -> bool:
        """
        @return: whether C{user_id} may remove (or ban) the member
            C{target_id}: the owner anyone but themself, a moderator plain
            members only.
        """
        if user_id == self.owner_id:
            return target_id != user_id
        return user_id in self.moderators and self.role(target_id) == MEMBER

    def successor(self) -> int | None:
        """
        @return: who owns the room once its owner has left it: the
            moderator who joined earliest, else the member who joined
            earliest (by their latest join), or L{None} when it is empty.
        """
        rest = [(joined, u) for u, joined in self.members.items() if u != self.owner_id]
        moderators = [item for item in rest if item[1] in self.moderators]
        earliest = min(moderators or rest, default=None)
        return None if earliest is None else earliest[1]


class Directory:
    """
    Users, friends and rooms, by id and by case-insensitive name.
    """

    def __init__(self) -> None:
        self.usernames: dict[int, str] = {}
        #: The accounts the operator disabled (PROTOCOL.md section 15).
        self.disabled: set[int] = set()
        self._user_ids: dict[str, int] = {}
        self._friends: dict[int, set[int]] = {}
        self.rooms: dict[int, Room] = {}
        self._room_ids: dict[str, int] = {}
        self._rooms_of: dict[int, set[int]] = {}

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Directory:
        """
        @return: a directory holding what C{snapshot} read from the store.
        """
        directory = cls()
        directory.load(snapshot)
        return directory

    def load(self, snapshot: Snapshot) -> None:
        """
        Add what C{snapshot} read from the store (to an empty directory).
        """
        for user_id, username in snapshot.users.items():
            self.add_user(user_id, username)
        self.disabled.update(snapshot.disabled)
        for a, b in snapshot.friendships:
            self.befriend(a, b)
        for room_id, name in snapshot.rooms.items():
            self.add_room(room_id, name, snapshot.owners.get(room_id))
        for room_id, topic in snapshot.topics.items():
            self.rooms[room_id].topic = topic
        for room_id, user_id, joined in snapshot.members:
            self.join(room_id, user_id, joined)
        for room_id, user_id in snapshot.moderators:
            self.rooms[room_id].moderators.add(user_id)
        for room_id, user_id in snapshot.bans:
            self.rooms[room_id].banned.add(user_id)

    def refresh_user(self, user_id: int, snapshot: Snapshot) -> None:
        """
        Make what is held of the account C{user_id} (its name, whether it
        is disabled, its friendships) what C{snapshot} read of it
        (L{chatd.store.Store.load_user}), in place.
        """
        for username in snapshot.users.values():
            self.add_user(user_id, username)
        if user_id in snapshot.disabled:
            self.disabled.add(user_id)
        else:
            self.disabled.discard(user_id)
        friends = {friend for _, friend in snapshot.friendships}
        for friend in self.friends(user_id) - friends:
            self.unfriend(user_id, friend)
        for friend in friends:
            self.befriend(user_id, friend)

    def refresh_room(self, room_id: int, snapshot: Snapshot) -> None:
        """
        Make what is held of the room C{room_id} (its owner, topic,
        members, roles and bans) what C{snapshot} read of it
        (L{chatd.store.Store.load_room}), in place: the server may hold the
        L{Room} across a write.
        """
        name = snapshot.rooms.get(room_id)
        if name is None:
            return
        room = self.rooms.get(room_id) or self.add_room(room_id, name)
        room.owner_id = snapshot.owners.get(room_id)
        room.topic = snapshot.topics.get(room_id, "")
        members = {user_id: joined for _, user_id, joined in snapshot.members}
        for user_id in room.members.keys() - members.keys():
            self.leave(room_id, user_id)
        for user_id, joined in members.items():
            self.join(room_id, user_id, joined)
        room.moderators.clear()
        room.moderators.update(user_id for _, user_id in snapshot.moderators)
        room.banned.clear()
        room.banned.update(user_id for _, user_id in snapshot.bans)

    def reload(self, snapshot: Snapshot) -> None:
        """
        Make the whole directory what C{snapshot} read from the store
        (L{chatd.store.Store.load_directory}), keeping the L{Room}s held.
        """
        fresh = Directory.from_snapshot(snapshot)
        self.usernames.update(fresh.usernames)
        self._user_ids.update(fresh._user_ids)
        self.disabled.clear()
        self.disabled.update(fresh.disabled)
        self._friends = fresh._friends
        for room_id, room in fresh.rooms.items():
            held = self.rooms.get(room_id)
            if held is None:
                self.rooms[room_id] = room
                self._room_ids[room.name.lower()] = room_id
                continue
            held.owner_id, held.topic = room.owner_id, room.topic
            held.members.clear()
            held.members.update(room.members)
            held.moderators.clear()
            held.moderators.update(room.moderators)
            held.banned.clear()
            held.banned.update(room.banned)
        self._rooms_of = fresh._rooms_of

    # Users.

    def add_user(self, user_id: int, username: str) -> None:
        """
        Record a new account.
        """
        self.usernames[user_id] = username
        self._user_ids[username.lower()] = user_id

    def user_id(self, username: str) -> int | None:
        """
        @return: the id of the user called C{username} (in any case), or
            L{None}.
        """
        return self._user_ids.get(username.lower())

    # Friends.

    def friends(self, user_id: int) -> Set[int]:
        """
        @return: the ids of C{user_id}'s friends.
        """
        return self._friends.get(user_id) or _EMPTY

    def are_friends(self, a: int, b: int) -> bool:
        """
        @return: whether C{a} and C{b} are friends.
        """
        return b in self.friends(a)

    def befriend(self, a: int, b: int) -> None:
        """
        Record that C{a} and C{b} are friends.
        """
        self._friends.setdefault(a, set()).add(b)
        self._friends.setdefault(b, set()).add(a)

    def unfriend(self, a: int, b: int) -> None:
        """
        Record that C{a} and C{b} are no longer friends.
        """
        self._friends.get(a, set()).discard(b)
        self._friends.get(b, set()).discard(a)

    # Rooms.

    def room_id(self, name: str) -> int | None:
        """
        @return: the id of the room called C{name} (in any case), or L{None}.
        """
        return self._room_ids.get(name.lower())

    def add_room(self, room_id: int, name: str, owner_id: int | None = None) -> Room:
        """
        Record a new room, with no members yet.
        """
        room = self.rooms[room_id] = Room(room_id, name, owner_id)
        self._room_ids[name.lower()] = room_id
        return room

    def rooms_of(self, user_id: int) -> Set[int]:
        """
        @return: the ids of the rooms C{user_id} is in.
        """
        return self._rooms_of.get(user_id) or _EMPTY

    def join(self, room_id: int, user_id: int, joined_message_id: int) -> None:
        """
        Record that C{user_id} joined room C{room_id} with the system message
        C{joined_message_id}.
        """
        self.rooms[room_id].members[user_id] = joined_message_id
        self._rooms_of.setdefault(user_id, set()).add(room_id)

    def leave(self, room_id: int, user_id: int) -> None:
        """
        Record that C{user_id} left room C{room_id} (and with it any role
        but ownership, which L{chatd.server.ChatServer} hands over).
        """
        self._rooms_of.get(user_id, set()).discard(room_id)
        room = self.rooms[room_id]
        room.members.pop(user_id, None)
        room.moderators.discard(user_id)

    def can_read(self, user_id: int, message: StoredMessage) -> bool:
        """
        @return: whether C{user_id} may read C{message}: it is of a
            friendship of theirs, or of a room they are in and not older
            than their latest join (PROTOCOL.md section 10, readable).
        """
        if message.target_type == PRIVATE:
            sender, recipient = message.sender_id, message.target_id
            if user_id == sender:
                return self.are_friends(user_id, recipient)
            return user_id == recipient and self.are_friends(user_id, sender)
        joined = self.rooms[message.target_id].members.get(user_id)
        return joined is not None and joined <= message.id

    def readers(self, message: StoredMessage) -> list[int]:
        """
        @return: the ids of the users who may read C{message}, ascending.
        """
        if message.target_type == PRIVATE:
            pair = sorted((message.sender_id, message.target_id))
            return pair if self.are_friends(*pair) else []
        members = self.rooms[message.target_id].members
        return sorted(user_id for user_id, joined in members.items() if joined <= message.id)

    def co_members(self, user_id: int) -> list[tuple[int, list[int]]]:
        """
        @return: for each room of C{user_id}, its id and its other members.
        """
        return [
            (room_id, [m for m in self.rooms[room_id].members if m != user_id])
            for room_id in self.rooms_of(user_id)
        ]


_EMPTY: frozenset[int] = frozenset()
