"""
L{chatd.sessions.Sessions}: who is online, pushes, and batched pushes.
"""

from __future__ import annotations

import json
import os
import threading
from unittest.mock import Mock

from twisted.trial.unittest import SynchronousTestCase

from chatd.passwords import _lower_priority
from chatd.sessions import Sessions, pack
from tests.support import FakeSession, unframe


def online(sessions: Sessions, user_id: int) -> FakeSession:
    session = FakeSession()
    sessions.opened(session)
    sessions.attach(session, user_id, f"u{user_id}")
    return session


class PushTests(SynchronousTestCase):
    """
    Pushes reach online users, encoded once.
    """

    def test_push_encodes_once(self) -> None:
        """
        Every online recipient gets the very same bytes; offline ones are
        skipped.
        """
        sessions = Sessions()
        a, b = online(sessions, 1), online(sessions, 2)
        sessions.push([1, 2, 3], {"type": "pong"})
        self.assertIs(a.frames[0], b.frames[0])
        self.assertEqual(json.loads(a.frames[0][4:]), {"type": "pong"})

    def test_batch_one_write_per_session(self) -> None:
        """
        Within a batch each session gets its pushes in one write, in the
        order they were made, when the batch ends.
        """
        sessions = Sessions()
        a, b = online(sessions, 1), online(sessions, 2)
        with sessions.batch():
            sessions.push([1, 2], {"type": "x", "n": 1})
            sessions.push([2], {"type": "x", "n": 2})
            with sessions.batch():
                sessions.push([1, 2], {"type": "x", "n": 3})
            self.assertEqual((a.frames, b.frames), ([], []))
        self.assertEqual(len(a.frames), 1)
        self.assertEqual(len(b.frames), 1)
        self.assertEqual([p["n"] for p in unframe(a.frames[0])], [1, 3])
        self.assertEqual([p["n"] for p in unframe(b.frames[0])], [1, 2, 3])

    def test_batch_shares_what_is_the_same(self) -> None:
        """
        Sessions that held the very same frames share one joined copy;
        one whose frames differ only in the middle gets its own.
        """
        sessions = Sessions()
        a, b, c = online(sessions, 1), online(sessions, 2), online(sessions, 3)
        with sessions.batch():
            sessions.push([1, 2, 3], b"first")
            sessions.push([1, 2], b"middle")
            sessions.push([3], b"other")
            sessions.push([1, 2, 3], b"last")
        self.assertIs(a.frames[0], b.frames[0])
        self.assertEqual(a.frames, [b"firstmiddlelast"])
        self.assertEqual(c.frames, [b"firstotherlast"])

    def test_batch_runs_keep_order(self) -> None:
        """
        Pushes to a room, each but its sender, and pushes to others in
        between reach each session in the order they were made, without
        the ones it sent.
        """
        sessions = Sessions()
        a, b, c = online(sessions, 1), online(sessions, 2), online(sessions, 3)
        room = {1: 0, 2: 0, 3: 0, 4: 0}
        with sessions.batch():
            sessions.push(room, b"a", but=1)
            sessions.push(room, b"b", but=2)
            sessions.push([3], b"c", but=1)
            sessions.push(room, b"d", but=3)
            sessions.push(room, b"e", but=4)
            sessions.push([1], b"f")
            sessions.push(room, b"g", but=1)
        self.assertEqual(a.frames, [b"bdef"])
        self.assertEqual(b.frames, [b"adeg"])
        self.assertEqual(c.frames, [b"abceg"])

    def test_push_but(self) -> None:
        """
        C{but} leaves one user out, here or on another process.
        """
        sessions = Sessions()
        a, b = online(sessions, 1), online(sessions, 2)
        sessions.push([1, 2, 3], b"x", but=1)
        sessions.push({1: 0, 2: 0}, b"y", but=2)
        self.assertEqual((a.frames, b.frames), ([b"y"], [b"x"]))
        relayed: list[tuple[str, list[bytes]]] = []
        peers = Mock()
        peers.relay.side_effect = lambda process, entries: relayed.append((process, entries))
        sessions.peers = peers
        sessions.moved(4, "p2")
        sessions.moved(5, "p2")
        sessions.push([1, 4, 5], b"z", 9, but=4)
        self.assertEqual(relayed, [("p2", [pack(9, [5], b"z")])])
        self.assertEqual(a.frames, [b"y", b"z"])

    def test_all_closed(self) -> None:
        """
        all_closed fires once the last open connection closes.
        """
        sessions = Sessions()
        a, b = online(sessions, 1), FakeSession()
        sessions.opened(b)
        d = sessions.all_closed()
        sessions.closed(a)
        self.assertNoResult(d)
        sessions.closed(b)
        self.successResultOf(d)
        self.successResultOf(sessions.all_closed())


class PriorityTests(SynchronousTestCase):
    """
    Password hashing runs at the lowest CPU priority.
    """

    def test_lower_priority(self) -> None:
        """
        A hashing thread is niced to 19 and scheduled SCHED_IDLE, and only
        that thread.
        """
        seen: list[int] = []
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        def work() -> None:
            _lower_priority()
            thread = threading.get_native_id()
            seen.append(os.getpriority(os.PRIO_PROCESS, thread))
            seen.append(os.sched_getscheduler(thread))

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        self.assertEqual(seen, [19, os.SCHED_IDLE])
        self.assertEqual(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), mine)
