"""
What one process tells the other processes of its deployment about the
changes it makes: the seam between L{chatd.server} and L{chatd.cluster}.

A process alone (SQLite, or PostgreSQL without Redis) tells nobody:
L{ALONE}.
"""

from __future__ import annotations

from typing import Protocol


class Deployment(Protocol):
    """
    The other processes, as L{chatd.server.ChatServer} and the operator's
    socket tell them what changed here.
    """

    def user_changed(self, user_id: int) -> None:
        """
        The account C{user_id} (its name, whether it is disabled, its
        friendships) changed: the others read it again.
        """

    def room_changed(self, room_id: int) -> None:
        """
        The room C{room_id} (its topic, owner, members, roles, bans)
        changed: the others read it again.
        """

    def login_failed(self, username: str) -> None:
        """
        A login as C{username} failed here: the others count it too.
        """

    def throttle_lifted(self, username: str) -> None:
        """
        The operator lifted the failed-login throttle of C{username}.
        """


class _Alone:
    """
    No other process to tell.
    """

    def user_changed(self, user_id: int) -> None:
        pass

    def room_changed(self, room_id: int) -> None:
        pass

    def login_failed(self, username: str) -> None:
        pass

    def throttle_lifted(self, username: str) -> None:
        pass


ALONE: Deployment = _Alone()
