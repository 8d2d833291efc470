"""
Fields before rules (PROTOCOL.md section 2): for every request type, a
request with a missing, mistyped or out-of-range field is refused for that
field, whatever state it names, and only a well-formed request reaches the
rules of section 5.

Each case names a well-formed request that breaks a rule, proving which
rule error it reaches, then spoils one field at a time: each spoiled
request must get the field's code instead.  A request type without a case
here fails C{test_every_route_has_a_case}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chatd import requests, wire
from chatd.requests import Target
from chatd.wire import PRIVATE, ROOM, ChatError
from tests.postgres import on_postgresql
from tests.support import FakeSession, ServerHarness

#: Put in an override to leave the field out.
MISSING: Any = object()

#: Integer-field values that are not integers in [0, 2**53).
NOT_INTEGERS = ["1", 1.0, True, None, -1, 2**53, [1], {"n": 1}]

#: A message id no message has.
NOWHERE = 10**9


@dataclass
class Case:
    """
    A request type's fields, tried against a state that breaks a rule.

    @ivar rule: the code the well-formed C{fields} get.
    @ivar spoiled: (overrides, expected code) pairs; each override set is
        applied to C{fields} on its own.
    @ivar logged_out: send it from a session that has not logged in.
    """

    kind: str
    fields: dict[str, Any]
    rule: str | None
    spoiled: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    logged_out: bool = False


def integer_spoils(name: str) -> list[tuple[dict[str, Any], str]]:
    """
    @return: the field C{name} missing, then mistyped every way.
    """
    return [({name: MISSING}, wire.INVALID_FIELD)] + [
        ({name: value}, wire.INVALID_FIELD) for value in NOT_INTEGERS
    ]


def target_spoils() -> list[tuple[dict[str, Any], str]]:
    return [
        *integer_spoils("target_type"),
        ({"target_type": 2}, wire.INVALID_FIELD),
        *integer_spoils("target_id"),
    ]


def string_spoils(name: str) -> list[tuple[dict[str, Any], str]]:
    return [({name: MISSING}, wire.INVALID_FIELD)] + [
        ({name: value}, wire.INVALID_FIELD) for value in [5, True, ["x"], {"x": 1}]
    ]


class FieldsBeforeRulesTests(SynchronousTestCase):
    """
    ncr is logged in; lzy exists but is no friend of ncr's; room "lzys"
    exists and ncr is not in it; "mine" is a room ncr is in.
    """

    def setUp(self) -> None:
        self.h = ServerHarness(self)
        self.ncr = self.h.user("ncr")
        self.lzy = self.h.user("lzy")
        self.lzys = self.h.call(self.lzy, "create_room", name="lzys")["room"]["id"]
        self.mine = self.h.call(self.ncr, "create_room", name="mine")["room"]["id"]
        self.me = self.ncr.user_id
        self.stranger = self.lzy.user_id

    def cases(self) -> list[Case]:
        me, stranger, lzys = self.me, self.stranger, self.lzys
        return [
            Case(
                "register",
                {"username": "lzy", "password": "secret1"},
                wire.USERNAME_TAKEN,
                string_spoils("username")
                + string_spoils("password")
                + [
                    ({"username": "l z y"}, wire.INVALID_USERNAME),
                    ({"password": "short"}, wire.INVALID_PASSWORD),
                ],
                logged_out=True,
            ),
            Case(
                "login",
                {"username": "lzy", "password": "secret1"},
                wire.ALREADY_AUTHENTICATED,
                string_spoils("username") + string_spoils("password"),
            ),
            Case(
                "resume",
                {"token": "not-a-token"},
                wire.INVALID_TOKEN,
                string_spoils("token"),
                logged_out=True,
            ),
            Case(
                "change_password",
                {"old_password": "wrong-password", "new_password": "new-secret"},
                wire.LOGIN_FAILED,
                string_spoils("old_password")
                + string_spoils("new_password")
                + [
                    ({"new_password": value}, wire.INVALID_PASSWORD)
                    for value in ["short", " " * 8, "x" * 129]
                ],
            ),
            Case("logout", {"whatever": 1}, None),
            Case("ping", {"whatever": 1}, None),
            Case(
                "send_message",
                {"target_type": ROOM, "target_id": lzys, "message": "hi"},
                wire.NOT_IN_ROOM,
                target_spoils()
                + string_spoils("message")
                + [
                    ({"message": ""}, wire.INVALID_MESSAGE),
                    ({"message": " \n"}, wire.INVALID_MESSAGE),
                    ({"message": "a\0b"}, wire.INVALID_MESSAGE),
                    ({"message": "x" * 4001}, wire.INVALID_MESSAGE),
                    ({"client_msg_id": ""}, wire.INVALID_FIELD),
                    ({"client_msg_id": "x" * 65}, wire.INVALID_FIELD),
                    ({"client_msg_id": 7}, wire.INVALID_FIELD),
                    ({"file_id": 7}, wire.INVALID_FIELD),
                    ({"file_id": "f", "message": 7}, wire.INVALID_FIELD),
                    ({"file_id": "f", "message": " "}, wire.INVALID_MESSAGE),
                ]
                + [
                    ({"reply_to": value}, wire.INVALID_FIELD)
                    for value in NOT_INTEGERS
                    if value is not None
                ],
            ),
            Case(
                "history",
                {"target_type": PRIVATE, "target_id": me},
                wire.INVALID_TARGET,
                [
                    *target_spoils(),
                    ({"before": "9"}, wire.INVALID_FIELD),
                    ({"after": 1.5}, wire.INVALID_FIELD),
                    ({"before": 9, "after": 1}, wire.INVALID_FIELD),
                    ({"limit": 0}, wire.INVALID_FIELD),
                    ({"limit": 101}, wire.INVALID_FIELD),
                    ({"limit": "50"}, wire.INVALID_FIELD),
                ],
            ),
            Case(
                "mark_read",
                {"target_type": PRIVATE, "target_id": stranger, "message_id": 1},
                wire.NOT_FRIENDS,
                target_spoils() + integer_spoils("message_id"),
            ),
            Case(
                "add_friend",
                {"username": "ncr"},
                wire.INVALID_TARGET,
                string_spoils("username"),
            ),
            Case(
                "resolve_friend_request",
                {"user_id": stranger},
                wire.NO_PENDING_REQUEST,
                [*integer_spoils("user_id"), ({"accept": "yes"}, wire.INVALID_FIELD)],
            ),
            Case(
                "remove_friend",
                {"user_id": stranger},
                wire.NOT_FRIENDS,
                integer_spoils("user_id"),
            ),
            Case(
                "create_room",
                {"name": "lzys"},
                wire.ROOM_EXISTS,
                [*string_spoils("name"), ({"name": "lzy's"}, wire.INVALID_ROOM_NAME)],
            ),
            Case(
                "join_room",
                {"name": "mine"},
                wire.ALREADY_IN_ROOM,
                string_spoils("name"),
            ),
            Case(
                "quit_room",
                {"room_id": lzys},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id"),
            ),
            Case(
                "add_friend_to_room",
                {"room_id": lzys, "user_id": stranger},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id") + integer_spoils("user_id"),
            ),
            Case(
                "list_rooms",
                {"query": "nothing matches this"},
                None,
                [({"query": value}, wire.INVALID_FIELD) for value in [5, True, ["x"]]],
            ),
            Case(
                "edit_message",
                {"message_id": NOWHERE, "message": "fixed"},
                wire.NO_SUCH_MESSAGE,
                integer_spoils("message_id")
                + string_spoils("message")
                + [
                    ({"message": " \n"}, wire.INVALID_MESSAGE),
                    ({"message": "a\0b"}, wire.INVALID_MESSAGE),
                    ({"message": "x" * 4001}, wire.INVALID_MESSAGE),
                ],
            ),
            Case(
                "delete_message",
                {"message_id": NOWHERE},
                wire.NO_SUCH_MESSAGE,
                integer_spoils("message_id"),
            ),
            Case(
                "react",
                {"message_id": NOWHERE, "emoji": "\U0001f44d"},
                wire.NO_SUCH_MESSAGE,
                integer_spoils("message_id")
                + string_spoils("emoji")
                + [
                    ({"emoji": value}, wire.INVALID_FIELD)
                    for value in ["", "a b", "\u3000", "a\x07", "\x85", "x" * 33]
                ]
                + [({"on": value}, wire.INVALID_FIELD) for value in ["true", 1, [True]]],
            ),
            Case(
                "search",
                {"query": "hello", "target_type": ROOM, "target_id": lzys},
                wire.NOT_IN_ROOM,
                target_spoils()
                + string_spoils("query")
                + [
                    ({"query": value}, wire.INVALID_FIELD)
                    for value in ["", " ", "\u3000", "\t\n", "x" * 201, None]
                ]
                + [
                    ({"before": value}, wire.INVALID_FIELD)
                    for value in NOT_INTEGERS
                    if value is not None
                ]
                + [({"limit": value}, wire.INVALID_FIELD) for value in [0, 51, "20", True, 1.0]],
            ),
            Case(
                "set_topic",
                {"room_id": lzys, "topic": "what it is for"},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id")
                + string_spoils("topic")
                + [
                    ({"topic": value}, wire.INVALID_FIELD)
                    for value in ["x" * 201, "two\nlines", "tab\there", "\x07", "\x85", None]
                ],
            ),
            Case(
                "set_role",
                {"room_id": lzys, "user_id": stranger, "role": "moderator"},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id")
                + integer_spoils("user_id")
                + string_spoils("role")
                + [
                    ({"role": value}, wire.INVALID_FIELD)
                    for value in ["owner", "Moderator", "admin", "", None]
                ],
            ),
            Case(
                "kick_from_room",
                {"room_id": lzys, "user_id": stranger, "ban": True},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id")
                + integer_spoils("user_id")
                + [({"ban": value}, wire.INVALID_FIELD) for value in ["true", 1, [True]]],
            ),
            Case(
                "unban_from_room",
                {"room_id": lzys, "user_id": stranger},
                wire.NOT_IN_ROOM,
                integer_spoils("room_id") + integer_spoils("user_id"),
            ),
            Case(
                "upload_start",
                {"name": "notes.txt", "size": 10**9, "mime": "text/plain"},
                wire.FILE_TOO_LARGE,
                string_spoils("name")
                + integer_spoils("size")
                + [
                    ({"name": ""}, wire.INVALID_FIELD),
                    ({"name": "x" * 256}, wire.INVALID_FIELD),
                    ({"name": "a/b"}, wire.INVALID_FIELD),
                    ({"name": "a\\b"}, wire.INVALID_FIELD),
                    ({"name": "a\nb"}, wire.INVALID_FIELD),
                    ({"name": "a\x7fb"}, wire.INVALID_FIELD),
                    ({"mime": 5}, wire.INVALID_FIELD),
                    ({"mime": "png"}, wire.INVALID_FIELD),
                    ({"mime": "image/"}, wire.INVALID_FIELD),
                    ({"mime": "imäge/png"}, wire.INVALID_FIELD),
                    ({"mime": "image/" + "p" * 122}, wire.INVALID_FIELD),
                    ({"size": 0}, wire.FILE_TOO_LARGE),
                ],
            ),
            Case(
                "upload_chunk",
                {"upload_id": "nowhere", "offset": 0, "data": "aGVsbG8="},
                wire.NO_SUCH_FILE,
                string_spoils("upload_id")
                + integer_spoils("offset")
                + string_spoils("data")
                + [
                    ({"data": ""}, wire.INVALID_FIELD),
                    ({"data": "aGVsbG8"}, wire.INVALID_FIELD),
                    ({"data": "aGVs bG8="}, wire.INVALID_FIELD),
                    ({"data": "aGVsbG8_"}, wire.INVALID_FIELD),
                    ({"data": "A" * (4 * 32768 // 3 + 4)}, wire.INVALID_FIELD),
                ],
            ),
            Case(
                "upload_finish",
                {"upload_id": "nowhere", "sha256": "0" * 64},
                wire.NO_SUCH_FILE,
                string_spoils("upload_id")
                + string_spoils("sha256")
                + [
                    ({"sha256": "0" * 63}, wire.INVALID_FIELD),
                    ({"sha256": "A" * 64}, wire.INVALID_FIELD),
                    ({"sha256": "g" * 64}, wire.INVALID_FIELD),
                ],
            ),
            Case(
                "download",
                {"file_id": "nowhere", "offset": 0, "length": 10},
                wire.NO_SUCH_FILE,
                string_spoils("file_id")
                + [
                    ({"offset": value}, wire.INVALID_FIELD)
                    for value in NOT_INTEGERS
                    if value is not None
                ]
                + [
                    ({"length": value}, wire.INVALID_FIELD)
                    for value in NOT_INTEGERS
                    if value is not None
                ]
                + [({"length": 0}, wire.INVALID_FIELD), ({"length": 32769}, wire.INVALID_FIELD)],
            ),
            Case(
                "typing",
                {"target_type": ROOM, "target_id": lzys, "typing": True},
                wire.NOT_IN_ROOM,
                target_spoils()
                + [({"typing": value}, wire.INVALID_FIELD) for value in [MISSING, None, "true", 1]],
            ),
        ]

    def outcome(self, case: Case, fields: dict[str, Any]) -> str | None:
        """
        @return: the code C{case.kind} with C{fields} is refused with, or
            L{None} when it succeeds.
        """
        session = FakeSession() if case.logged_out else self.ncr
        try:
            self.h.call(session, case.kind, **fields)
        except ChatError as e:
            return e.code
        return None

    def test_every_route_has_a_case(self) -> None:
        """
        Every request type the server routes is tried here.
        """
        self.assertEqual({case.kind for case in self.cases()}, set(self.h.server.routes))

    def test_well_formed_reach_the_rules(self) -> None:
        """
        Each case's well-formed request gets its rule's answer: the state
        it names would refuse it.
        """
        for case in self.cases():
            if case.kind == "logout":
                continue  # it would end the session the other cases use
            with self.subTest(kind=case.kind):
                self.assertEqual(self.outcome(case, case.fields), case.rule)

    def test_fields_before_rules(self) -> None:
        """
        A spoiled field gets its own code, not the rule's.
        """
        for case in self.cases():
            for overrides, code in case.spoiled:
                fields = {**case.fields, **overrides}
                for name, value in overrides.items():
                    if value is MISSING:
                        del fields[name]
                with self.subTest(kind=case.kind, fields=fields):
                    self.assertEqual(self.outcome(case, fields), code)

    def test_the_examples_of_the_issue(self) -> None:
        """
        The three requests found answering a rule for a bad field.
        """
        me, stranger, lzys = self.me, self.stranger, self.lzys
        ncr = self.ncr
        self.assertEqual(
            self.h.error(ncr, "history", target_type=PRIVATE, target_id=me, before="9"),
            wire.INVALID_FIELD,
        )
        self.assertEqual(
            self.h.error(ncr, "mark_read", target_type=PRIVATE, target_id=stranger),
            wire.INVALID_FIELD,
        )
        self.assertEqual(
            self.h.error(ncr, "send_message", target_type=ROOM, target_id=lzys),
            wire.INVALID_FIELD,
        )

    def test_refusal_changes_nothing(self) -> None:
        """
        A request refused for a field stores nothing: a spoiled send to a
        room one is in leaves its history as it was.
        """
        before = self.h.call(self.ncr, "history", target_type=ROOM, target_id=self.mine)
        for fields in [
            {"message": ""},
            {"message": "hi", "client_msg_id": ""},
            {"message": 5},
        ]:
            self.assertIn(
                self.h.error(
                    self.ncr, "send_message", target_type=ROOM, target_id=self.mine, **fields
                ),
                (wire.INVALID_FIELD, wire.INVALID_MESSAGE),
            )
        after = self.h.call(self.ncr, "history", target_type=ROOM, target_id=self.mine)
        self.assertEqual(after, before)


class ParseTests(SynchronousTestCase):
    """
    The parsers alone: what a well-formed request becomes.
    """

    def test_defaults(self) -> None:
        self.assertEqual(
            requests.History.parse({"target_type": 0, "target_id": 2}),
            requests.History(Target(PRIVATE, 2), None, None, 50),
        )
        self.assertEqual(
            requests.ResolveFriendRequest.parse({"user_id": 3}),
            requests.ResolveFriendRequest(3, True),
        )
        self.assertEqual(requests.ListRooms.parse({}), requests.ListRooms(""))
        self.assertEqual(
            requests.SendMessage.parse({"target_type": 1, "target_id": 4, "message": "x"}),
            requests.SendMessage(Target(ROOM, 4), "x", None, None),
        )
        self.assertEqual(
            requests.React.parse({"message_id": 3, "emoji": "x"}), requests.React(3, "x", True)
        )

    def test_empty_edit_reaches_the_rules(self) -> None:
        """
        An empty new text passes the fields: it is the caption a file
        message may have, which only the message's kind can tell.
        """
        self.assertEqual(
            requests.EditMessage.parse({"message_id": 3, "message": ""}),
            requests.EditMessage(3, ""),
        )

    def test_null_is_absent(self) -> None:
        """
        An optional field given as null counts as absent.
        """
        self.assertEqual(
            requests.History.parse(
                {"target_type": 1, "target_id": 2, "before": None, "limit": None}
            ),
            requests.History(Target(ROOM, 2), None, None, 50),
        )

    def test_text_kept_exactly(self) -> None:
        """
        A message text is kept as sent, whitespace and all.
        """
        text = "  two\nlines \u00e9\U0001f600 "
        parsed = requests.SendMessage.parse(
            {"target_type": 0, "target_id": 1, "message": text, "client_msg_id": "c1"}
        )
        self.assertEqual((parsed.message, parsed.client_msg_id), (text, "c1"))

    def test_values_frozen(self) -> None:
        parsed = requests.QuitRoom.parse({"room_id": 1})
        with self.assertRaises(AttributeError):
            parsed.room_id = 2  # type: ignore[misc]


# These suites run on PostgreSQL too.
on_postgresql(
    globals(),
    FieldsBeforeRulesTests,
)
