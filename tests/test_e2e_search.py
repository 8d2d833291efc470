"""
End to end over loopback TCP for PROTOCOL.md section 11 (search): a real
server on a loopback port, a real SQLite file in the test's temporary
directory, and bare wire clients.

Users are registered in a fixed order in every test, so their ids are known:
ncr is 1, lzy is 2, wsx is 3 and qaz is 4.  Flood control (section 8) is
lifted: some tests send more than a burst of requests on one connection.

Where a test needs to know what a user may read, it asks C{history} (every
page of every conversation of theirs): section 10 defines a readable message
as one the user would get back there, and section 11 searches exactly those.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.trial.unittest import TestCase

from chatd import wire
from chatd.protocol import Limits
from tests.postgres import on_postgresql
from tests.support import RunningServer, WireClient, logged_in, start_server, wire_client
from tests.test_e2e import befriend
from tests.test_e2e_messages import TIME, drain, send

NCR, LZY, WSX, QAZ = 1, 2, 3, 4

UNLIMITED = Limits(rate=1e9, burst=10**9)

#: Unicode White_Space (PropList.txt), at which a query is split.
WHITE_SPACE = "".join(
    map(
        chr,
        [
            *range(0x09, 0x0E),
            0x20,
            0x85,
            0xA0,
            0x1680,
            *range(0x2000, 0x200B),
            0x2028,
            0x2029,
            0x202F,
            0x205F,
            0x3000,
        ],
    )
)

#: Every field of a room Message (PROTOCOL.md 3); a private one lacks room_name.
ROOM_MESSAGE_FIELDS = {
    "id",
    "client_msg_id",
    "sender_id",
    "sender_name",
    "target_type",
    "target_id",
    "room_name",
    "kind",
    "message",
    "time",
    "edited_at",
    "deleted",
    "reply_to",
    "mentions",
    "reactions",
    "file",
}
PRIVATE_MESSAGE_FIELDS = ROOM_MESSAGE_FIELDS - {"room_name"}

MAX_ID = 2**53 - 1


def terms(query: str) -> list[str]:
    """
    @return: the terms of C{query}: its runs between Unicode White_Space.
    """
    return [term for term in re.split(f"[{re.escape(WHITE_SPACE)}]", query) if term]


def matches(message: wire.Payload, query: str) -> bool:
    """
    @return: whether C{message} matches C{query} by the letter of section 11:
        a text or file message, not deleted, whose text contains every term
        as a literal substring, both sides case-folded by C{str.casefold}.
    """
    if message["kind"] == "system" or message["deleted"]:
        return False
    text = message["message"].casefold()
    return all(term.casefold() in text for term in terms(query))


async def everything(client: WireClient, target_type: int, target_id: int) -> list[wire.Payload]:
    """
    @return: every message of a conversation that C{history} returns to
        C{client}, oldest first, read page by page.
    """
    messages: list[wire.Payload] = []
    fields: dict[str, Any] = {"limit": 100}
    while True:
        page = await client.request(
            "history", target_type=target_type, target_id=target_id, **fields
        )
        assert page["type"] == "history", page
        messages = page["messages"] + messages
        if not page["has_more"]:
            return messages
        fields["before"] = page["messages"][0]["id"]


async def readable(
    client: WireClient, conversations: list[tuple[int, int]]
) -> dict[int, wire.Payload]:
    """
    @return: every message C{client} can read in C{conversations}, by id.
    """
    found: dict[int, wire.Payload] = {}
    for target_type, target_id in conversations:
        for message in await everything(client, target_type, target_id):
            found[message["id"]] = message
    return found


def expected(messages: dict[int, wire.Payload], query: str) -> list[wire.Payload]:
    """
    @return: the messages of C{messages} that match C{query}, newest first.
    """
    return [messages[i] for i in sorted(messages, reverse=True) if matches(messages[i], query)]


class Base(TestCase):
    """
    Set-ups and checks the tests share.
    """

    async def users(self, *names: str) -> tuple[RunningServer, list[WireClient]]:
        """
        @return: a running server and logged-in clients of C{names}, in that
            order (so with the ids 1, 2, ...).
        """
        running = await start_server(self, limits=UNLIMITED)
        clients = [await logged_in(self, running.port, name) for name in names]
        return running, clients

    async def room(self, name: str, owner: WireClient, *members: WireClient) -> int:
        """
        Create the room C{name} by C{owner}; C{members} join it, one after
        another.

        @return: the room's id.
        """
        created = await owner.request("create_room", name=name)
        assert created["type"] == "create_successful", created
        for member in members:
            joined = await member.request("join_room", name=name)
            assert joined["type"] == "join_successful", joined
        room_id: int = created["room"]["id"]
        return room_id

    async def search(self, client: WireClient, query: Any, **fields: Any) -> wire.Payload:
        """
        @return: the search_results reply to a search.
        """
        reply = await client.request("search", query=query, **fields)
        self.assertEqual(reply["type"], "search_results", reply)
        self.assertIsInstance(reply["messages"], list)
        self.assertIsInstance(reply["has_more"], bool)
        ids = [m["id"] for m in reply["messages"]]
        self.assertEqual(ids, sorted(set(ids), reverse=True), "not newest first, or repeated")
        return reply

    async def found(self, client: WireClient, query: Any, **fields: Any) -> list[wire.Payload]:
        """
        @return: the messages of one page of a search.
        """
        messages: list[wire.Payload] = (await self.search(client, query, **fields))["messages"]
        return messages

    async def found_all(
        self, client: WireClient, query: str, limit: int = 50, **fields: Any
    ) -> list[wire.Payload]:
        """
        @return: every match of a search, read page by page with C{before},
            newest first; each page but the last full and with has_more.
        """
        messages: list[wire.Payload] = []
        while True:
            reply = await self.search(client, query, limit=limit, **fields)
            page = reply["messages"]
            self.assertLessEqual(len(page), limit)
            messages += page
            if not reply["has_more"]:
                break
            self.assertEqual(len(page), limit, "a page with has_more must be full")
            fields["before"] = page[-1]["id"]
        ids = [m["id"] for m in messages]
        self.assertEqual(ids, sorted(set(ids), reverse=True), "pages overlap or go forwards")
        return messages

    async def assertFinds(
        self,
        client: WireClient,
        query: str,
        sent: list[wire.Payload],
        wanted: list[str],
        **fields: Any,
    ) -> None:
        """
        Check that searching C{query} finds exactly the messages of C{sent}
        (a corpus of distinct texts, in the order sent) whose texts are
        C{wanted}, newest first, as they were sent.
        """
        chosen = [m for m in reversed(sent) if m["message"] in wanted]
        self.assertEqual(len(chosen), len(wanted), f"bad test: {wanted} not all in the corpus")
        oracle = [m for m in reversed(sent) if matches(m, query)]
        self.assertEqual(chosen, oracle, f"bad test: {query!r} by the letter of section 11")
        reply = await self.search(client, query, limit=50, **fields)
        self.assertEqual(
            [m["message"] for m in reply["messages"]],
            [m["message"] for m in chosen],
            f"query {query!r}",
        )
        self.assertEqual(reply["messages"], chosen, f"query {query!r}")
        self.assertFalse(reply["has_more"])

    async def corpus(
        self, client: WireClient, target_type: int, target_id: int, texts: list[str]
    ) -> list[wire.Payload]:
        """
        @return: the Messages of C{texts}, sent by C{client} in that order.
        """
        self.assertEqual(len(set(texts)), len(texts), "bad test: texts repeat")
        return [await send(client, target_type, target_id, text) for text in texts]

    async def assertError(self, client: WireClient, code: str, kind: str, **fields: Any) -> None:
        """
        Check that a request is refused with C{code}; then a ping, so that
        a run of refusals never reaches the 10 protocol errors in a row
        after which the server closes the connection (PROTOCOL.md 2).
        """
        reply = await client.request(kind, **fields)
        self.assertEqual(reply["type"], "error", reply)
        self.assertEqual(reply["code"], code, (kind, fields, reply))
        pong = await client.request("ping")
        self.assertEqual(pong["type"], "pong", pong)

    async def assertSearchError(self, client: WireClient, code: str, **fields: Any) -> None:
        """
        Check that a search with C{fields} is refused with C{code}.
        """
        await self.assertError(client, code, "search", **fields)


class ValidationTests(Base):
    """
    The fields of search (PROTOCOL.md 2 and 11): anything out of shape is
    invalid_field, before any rule.
    """

    async def test_query_refused(self) -> None:
        """
        A missing, empty, whitespace-only (U+3000 and the other Unicode
        White_Space included), too long (201 code points) or non-string
        query is invalid_field.
        """
        _, (ncr,) = await self.users("ncr")
        await self.room("room1", ncr)
        await self.assertSearchError(ncr, "invalid_field")
        await self.assertSearchError(ncr, "invalid_field", limit=5)
        for query in (
            "",
            " ",
            "\u3000",
            "\u3000\u3000",
            "\t\n\r\x0b\x0c",
            " \u3000\u00a0\u2003\u2028\u0085\u205f\u1680\u202f",
            WHITE_SPACE,
            "a" * 201,
            "😀" * 201,
            "a " * 100 + "b",
            " " * 190 + "abcdefghijk",
            5,
            0,
            1.5,
            True,
            None,
            ["abc"],
            {"q": "abc"},
        ):
            await self.assertSearchError(ncr, "invalid_field", query=query)

    async def test_query_200_code_points(self) -> None:
        """
        A query of 200 code points is accepted, counted in code points (not
        UTF-16 units nor bytes), whitespace included, and however long its
        case folding is.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        long = await send(ncr, 1, room_id, "<" + "a" * 200 + ">")
        emoji = await send(ncr, 1, room_id, "😀" * 200)
        self.assertEqual(await self.found(ncr, "a" * 200), [long])
        self.assertEqual(await self.found(ncr, "😀" * 200), [emoji])
        self.assertEqual(await self.found(ncr, " " * 190 + "a" * 10), [long])
        self.assertEqual(await self.found(ncr, "\u3000" * 199 + "😀"), [emoji])
        self.assertEqual(await self.found(ncr, "ß" * 200), [])
        self.assertEqual(await self.found(ncr, "é" * 200), [])

    async def test_limit_refused(self) -> None:
        """
        limit must be a JSON integer from 1 to 50.
        """
        _, (ncr,) = await self.users("ncr")
        for limit in (0, 51, -1, 100, 2**53, 1.0, 20.0, 1.5, "20", True, False, [20]):
            await self.assertSearchError(ncr, "invalid_field", query="abc", limit=limit)

    async def test_before_refused(self) -> None:
        """
        before must be a JSON integer, 0 <= before < 2^53.
        """
        _, (ncr,) = await self.users("ncr")
        for before in (-1, -100, 2**53, 1.5, 10.0, "10", True, [10]):
            await self.assertSearchError(ncr, "invalid_field", query="abc", before=before)

    async def test_target_refused(self) -> None:
        """
        target_type must be 0 or 1 and target_id an integer; they come both
        or neither.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        room_id = await self.room("room1", ncr)
        for target_type in (2, -1, 3, "0", "1", 0.0, 1.0, True, False):
            await self.assertSearchError(
                ncr, "invalid_field", query="abc", target_type=target_type, target_id=LZY
            )
        for target_id in (-1, 2**53, 2.0, "2", True, [2]):
            await self.assertSearchError(
                ncr, "invalid_field", query="abc", target_type=0, target_id=target_id
            )
        await self.assertSearchError(ncr, "invalid_field", query="abc", target_type=0)
        await self.assertSearchError(ncr, "invalid_field", query="abc", target_type=1)
        await self.assertSearchError(ncr, "invalid_field", query="abc", target_id=LZY)
        await self.assertSearchError(ncr, "invalid_field", query="abc", target_id=room_id)

    async def test_valid_bounds(self) -> None:
        """
        limit 1 and 50, before 0 and 2^53 - 1, and a search that finds
        nothing are all answered search_results.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        said = await send(ncr, 1, room_id, "bounds")
        for fields in ({"limit": 1}, {"limit": 50}, {"before": MAX_ID}):
            self.assertEqual(await self.found(ncr, "bounds", **fields), [said])
        reply = await self.search(ncr, "bounds", before=0)
        self.assertEqual((reply["messages"], reply["has_more"]), ([], False))
        reply = await self.search(ncr, "nowhere to be found")
        self.assertEqual((reply["messages"], reply["has_more"]), ([], False))

    async def test_fields_before_rules(self) -> None:
        """
        A malformed search naming an unknown or forbidden target is
        invalid_field, not the rule's error (PROTOCOL.md 2).
        """
        _, (ncr, _lzy) = await self.users("ncr", "lzy")
        for target_type, target_id in ((0, 999), (1, 999), (0, LZY), (0, NCR)):
            target = {"target_type": target_type, "target_id": target_id}
            for bad in ({"query": ""}, {"query": "abc", "limit": 0}, {"query": "a", "before": -1}):
                await self.assertSearchError(ncr, "invalid_field", **target, **bad)

    async def test_not_authenticated(self) -> None:
        """
        A search before login is not_authenticated, and the connection
        stays usable.
        """
        running = await start_server(self, limits=UNLIMITED)
        client = await wire_client(self, running.port)
        await self.assertSearchError(client, "not_authenticated", query="abc")
        await self.assertSearchError(client, "not_authenticated", query="abc", limit=5, before=9)
        reply = await client.request("register", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "register_successful")
        await self.assertSearchError(client, "not_authenticated", query="abc")
        await self.assertSearchError(
            client, "not_authenticated", query="abc", target_type=1, target_id=1
        )
        reply = await client.request("login", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "login_successful")
        self.assertEqual(await self.found(client, "abc"), [])


class TermTests(Base):
    """
    How a query's terms match a message's text (PROTOCOL.md 11).
    """

    async def test_every_term_must_match(self) -> None:
        """
        A message matches when its text contains every term, in any order,
        overlapping or repeated.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        sent = await self.corpus(
            ncr,
            1,
            room_id,
            ["hello world", "hello", "world", "worldly hellos", "say hello to the world!", "abcd"],
        )
        both = ["hello world", "worldly hellos", "say hello to the world!"]
        await self.assertFinds(ncr, "hello world", sent, both)
        await self.assertFinds(ncr, "world hello", sent, both)
        await self.assertFinds(ncr, "hello hello world", sent, both)
        await self.assertFinds(ncr, "hello world the", sent, ["say hello to the world!"])
        await self.assertFinds(ncr, "hello planet", sent, [])
        await self.assertFinds(ncr, "abc bcd", sent, ["abcd"])
        await self.assertFinds(ncr, "abcd bc d a", sent, ["abcd"])
        await self.assertFinds(ncr, "abcde", sent, [])
        await self.assertFinds(ncr, "hello\u3000world", sent, both)

    async def test_split_at_unicode_white_space(self) -> None:
        """
        The query is split at every Unicode White_Space character (U+3000,
        no-break spaces, line separators included); leading and trailing
        whitespace is ignored.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        sent = await self.corpus(
            ncr,
            1,
            room_id,
            [
                "alpha beta",
                "beta\talpha",
                "alpha",
                "beta",
                "alpha-beta",
                "你好 世界",
                "世界\uff0c你好",
            ],
        )
        both = ["alpha beta", "beta\talpha", "alpha-beta"]
        for space in WHITE_SPACE:
            await self.assertFinds(ncr, f"alpha{space}beta", sent, both)
        await self.assertFinds(ncr, "\u3000 alpha\n\t beta\u2003\u3000", sent, both)
        await self.assertFinds(ncr, "你好\u3000世界", sent, ["你好 世界", "世界\uff0c你好"])
        await self.assertFinds(ncr, "\u3000你好\u3000", sent, ["你好 世界", "世界\uff0c你好"])

    async def test_only_white_space_splits(self) -> None:
        """
        Characters that are not Unicode White_Space (zero-width space, the
        information separators U+001C-U+001F, punctuation) belong to the
        term.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = ["alpha beta", "alphabeta", "alpha,beta", "<alpha\u200bbeta>", "alpha\x1fbeta"]
        sent = await self.corpus(ncr, 1, room_id, texts)
        await self.assertFinds(ncr, "alpha\u200bbeta", sent, ["<alpha\u200bbeta>"])
        await self.assertFinds(ncr, "alpha,beta", sent, ["alpha,beta"])
        await self.assertFinds(ncr, "alpha\x1fbeta", sent, ["alpha\x1fbeta"])
        await self.assertFinds(ncr, "\x1f", sent, ["alpha\x1fbeta"])
        await self.assertFinds(ncr, "\u200b", sent, ["<alpha\u200bbeta>"])

    async def test_literal_substrings(self) -> None:
        """
        Terms are literal text: no wildcard (%, _, *, ?, [...]), no quoting,
        no operator (OR, AND, NOT, NEAR, -, +, ^, column:), no escape.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = [
            "100% sure",
            "1000 people",
            "a_b here",
            "axb there",
            "star * power",
            "starship",
            'say "a" now',
            "a plain a",
            "this or that",
            "ORANGE",
            "cats and dogs",
            "-x marks",
            "x marks",
            "NEAR(a, b)",
            "^start",
            "start",
            "col:umn",
            "[ab] brackets",
            "question?",
            "back\\slash",
            "it's",
            "a+b",
        ]
        sent = await self.corpus(ncr, 1, room_id, texts)
        cases: list[tuple[str, list[str]]] = [
            ("100%", ["100% sure"]),
            ("%", ["100% sure"]),
            ("10%", []),
            ("100", ["100% sure", "1000 people"]),
            ("_", ["a_b here"]),
            ("a_b", ["a_b here"]),
            ("a_", ["a_b here"]),
            ("*", ["star * power"]),
            ("star*", []),
            ("s*p", []),
            ("?", ["question?"]),
            ("questio?", []),
            ("[ab]", ["[ab] brackets"]),
            ("[", ["[ab] brackets"]),
            ('"a"', ['say "a" now']),
            ('"', ['say "a" now']),
            ('"a', ['say "a" now']),
            ('"plain"', []),
            ("OR", ["this or that", "ORANGE"]),
            ("cats OR dogs", []),
            ("cats AND dogs", ["cats and dogs"]),
            ("AND", ["cats and dogs"]),
            ("NOT", []),
            ("-x", ["-x marks"]),
            ("-cats", []),
            ("x", ["axb there", "-x marks", "x marks"]),
            ("marks -x", ["-x marks"]),
            ("NEAR(a,", ["NEAR(a, b)"]),
            ("NEAR(a", ["NEAR(a, b)"]),
            ("^start", ["^start"]),
            ("^s", ["^start"]),
            ("start", ["^start", "start"]),
            ("col:umn", ["col:umn"]),
            ("body:x", []),
            ("message:a", []),
            ("\\", ["back\\slash"]),
            ("k\\s", ["back\\slash"]),
            ("'", ["it's"]),
            ("it's", ["it's"]),
            ("a+b", ["a+b"]),
            ("+", ["a+b"]),
            ("\x00", []),
            ("a\x00", []),
        ]
        for query, wanted in cases:
            await self.assertFinds(ncr, query, sent, wanted)

    async def test_or_is_a_term(self) -> None:
        """
        OR between words is a third term that must match too: the query
        "cats OR dogs" finds only texts holding "cats", "or" and "dogs".
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = ["cats", "dogs", "cats and dogs", "cats or dogs", "dogs, cats, horses", "or"]
        sent = await self.corpus(ncr, 1, room_id, texts)
        await self.assertFinds(ncr, "cats OR dogs", sent, ["cats or dogs", "dogs, cats, horses"])
        await self.assertFinds(ncr, "OR", sent, ["cats or dogs", "dogs, cats, horses", "or"])
        await self.assertFinds(ncr, "cats -dogs", sent, [])
        await self.assertFinds(ncr, "cats NOT dogs", sent, [])

    async def test_case_folding(self) -> None:
        """
        Case is ignored by full Unicode case folding (str.casefold), on both
        sides: ß is ss, final sigma is sigma, the ligature ﬁ is fi, the
        Kelvin sign is k.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = [
            "straße",
            "STRASSE",
            "Boss",
            "hello, world",
            "HELLO THERE",
            "σας",
            "ΣΑΣ",
            "ﬁle",
            "FILE",
            "300\u212a",
            "ПРИВЕТ, МИР",
        ]
        sent = await self.corpus(ncr, 1, room_id, texts)
        cases: list[tuple[str, list[str]]] = [
            ("STRASSE", ["straße", "STRASSE"]),
            ("straße", ["straße", "STRASSE"]),
            ("Straße", ["straße", "STRASSE"]),
            ("strasse", ["straße", "STRASSE"]),
            ("SS", ["straße", "STRASSE", "Boss"]),
            ("ß", ["straße", "STRASSE", "Boss"]),
            ("ẞ", ["straße", "STRASSE", "Boss"]),
            ("boß", ["Boss"]),
            ("HELLO", ["hello, world", "HELLO THERE"]),
            ("hello", ["hello, world", "HELLO THERE"]),
            ("HeLlO,", ["hello, world"]),
            ("ΣΑΣ", ["σας", "ΣΑΣ"]),
            ("σας", ["σας", "ΣΑΣ"]),
            ("ς", ["σας", "ΣΑΣ"]),
            ("file", ["ﬁle", "FILE"]),
            ("ﬁ", ["ﬁle", "FILE"]),
            ("ﬁLE", ["ﬁle", "FILE"]),
            ("300k", ["300\u212a"]),
            ("K", ["300\u212a"]),
            ("привет, мир", ["ПРИВЕТ, МИР"]),
        ]
        for query, wanted in cases:
            await self.assertFinds(ncr, query, sent, wanted)

    async def test_no_other_normalisation(self) -> None:
        """
        Nothing but case folding: a precomposed é and e + U+0301 are
        different, accents are not removed, full-width letters are not
        ASCII, superscripts are not digits.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = ["café", "CAFÉ", "cafe\u0301", "\uff21\uff22\uff23", "abc", "x²", "naïve"]
        sent = await self.corpus(ncr, 1, room_id, texts)
        cases: list[tuple[str, list[str]]] = [
            ("é", ["café", "CAFÉ"]),
            ("café", ["café", "CAFÉ"]),
            ("e\u0301", ["cafe\u0301"]),
            ("cafe\u0301", ["cafe\u0301"]),
            ("CAFE\u0301", ["cafe\u0301"]),
            ("cafe", ["cafe\u0301"]),
            ("abc", ["abc"]),
            ("\uff21\uff22\uff23", ["\uff21\uff22\uff23"]),
            ("\uff41\uff42\uff43", ["\uff21\uff22\uff23"]),
            ("x2", []),
            ("²", ["x²"]),
            ("naive", []),
            ("NAÏVE", ["naïve"]),
        ]
        for query, wanted in cases:
            await self.assertFinds(ncr, query, sent, wanted)

    async def test_any_script(self) -> None:
        """
        Terms of any script and length match as substrings: Chinese (one
        character, two, a whole text), Japanese, Korean, Cyrillic, Arabic,
        emoji (one code point, a run, a ZWJ sequence and a part of one).
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
        texts = [
            "大家你好\uff01",
            "你好",
            "好的",
            "こんにちは世界",
            "안녕하세요",
            "Привет, мир",
            "مرحبا بالعالم",
            "party 🎉 time",
            "🎉🎉🎉",
            f"family {family} photo",
            "👎 no",
        ]
        sent = await self.corpus(ncr, 1, room_id, texts)
        cases: list[tuple[str, list[str]]] = [
            ("你好", ["大家你好\uff01", "你好"]),
            ("好", ["大家你好\uff01", "你好", "好的"]),
            ("大家你好\uff01", ["大家你好\uff01"]),
            ("你好\uff01", ["大家你好\uff01"]),
            ("大", ["大家你好\uff01"]),
            ("こんにちは", ["こんにちは世界"]),
            ("世界", ["こんにちは世界"]),
            ("は世", ["こんにちは世界"]),
            ("안녕", ["안녕하세요"]),
            ("세", ["안녕하세요"]),
            ("ПРИВЕТ", ["Привет, мир"]),
            ("мир", ["Привет, мир"]),
            ("بالعالم", ["مرحبا بالعالم"]),
            ("ب", ["مرحبا بالعالم"]),
            ("🎉", ["party 🎉 time", "🎉🎉🎉"]),
            ("🎉🎉", ["🎉🎉🎉"]),
            ("🎉🎉🎉", ["🎉🎉🎉"]),
            ("🎉🎉🎉🎉", []),
            ("🎉 time", ["party 🎉 time"]),
            ("y 🎉 t", ["party 🎉 time"]),
            (family, [f"family {family} photo"]),
            ("\U0001f469", [f"family {family} photo"]),
            ("👍", []),
            ("👎", ["👎 no"]),
            ("你好 好的", []),
        ]
        for query, wanted in cases:
            await self.assertFinds(ncr, query, sent, wanted)

    async def test_short_and_long_terms(self) -> None:
        """
        Terms of one, two, three and more characters match anywhere in the
        text, at its start and end too, alone or mixed.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        texts = [
            "x",
            "box of rocks",
            "OK then",
            "book",
            "o k",
            "ok it is wonderful",
            "wonderful",
            "abcdef",
            "defabc",
            "abc",
            "xyz end",
        ]
        sent = await self.corpus(ncr, 1, room_id, texts)
        cases: list[tuple[str, list[str]]] = [
            ("x", ["x", "box of rocks", "xyz end"]),
            ("X", ["x", "box of rocks", "xyz end"]),
            ("ok", ["OK then", "book", "ok it is wonderful"]),
            ("OK", ["OK then", "book", "ok it is wonderful"]),
            ("o k", ["box of rocks", "OK then", "book", "o k", "ok it is wonderful"]),
            ("ok wonderful", ["ok it is wonderful"]),
            ("wonderful ok", ["ok it is wonderful"]),
            ("x ok", []),
            ("b oo k", ["book"]),
            ("abc", ["abcdef", "defabc", "abc"]),
            ("def", ["abcdef", "defabc"]),
            ("abcdef", ["abcdef"]),
            ("cdef", ["abcdef"]),
            ("defa", ["defabc"]),
            ("ab", ["abcdef", "defabc", "abc"]),
            ("ef", ["abcdef", "defabc"]),
            ("fa", ["defabc"]),
            ("f", ["abcdef", "defabc", "ok it is wonderful", "wonderful", "box of rocks"]),
            ("end", ["xyz end"]),
            ("nd", ["ok it is wonderful", "wonderful", "xyz end"]),
            ("d", ["ok it is wonderful", "wonderful", "abcdef", "defabc", "xyz end"]),
            ("xy", ["xyz end"]),
            ("xyz end", ["xyz end"]),
            ("xyz  end ", ["xyz end"]),
            ("x end", ["xyz end"]),
            ("ab wonderful", []),
            ("abcdefg", []),
        ]
        for query, wanted in cases:
            await self.assertFinds(ncr, query, sent, wanted)

    async def test_only_the_text(self) -> None:
        """
        Only a message's own text is searched: not its sender's name, not
        the room's name, not the text it quotes; an @mention matches as the
        literal text it is.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room("lounge", ncr, lzy)
        first = await send(ncr, 1, room_id, "first words")
        answer = await send(lzy, 1, room_id, "@ncr indeed", reply_to=first["id"])
        self.assertEqual(answer["reply_to"]["message"], "first words")
        for client in (ncr, lzy):
            self.assertEqual(await self.found(client, "lzy"), [])
            self.assertEqual(await self.found(client, "lounge"), [])
            self.assertEqual(await self.found(client, "first"), [first])
            self.assertEqual(await self.found(client, "words"), [first])
            self.assertEqual(await self.found(client, "ncr"), [answer])
            self.assertEqual(await self.found(client, "@NCR"), [answer])


class OrderAndPagingTests(Base):
    """
    Newest first, limit, before and has_more (PROTOCOL.md 11).
    """

    async def test_newest_first_across_conversations(self) -> None:
        """
        Matches of every conversation of the user come in one list, newest
        first.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        await befriend(ncr, wsx, "wsx")
        room1 = await self.room("room1", ncr, lzy)
        room2 = await self.room("room2", wsx, ncr)
        order = [
            (ncr, 1, room1),
            (lzy, 0, NCR),
            (wsx, 1, room2),
            (ncr, 0, WSX),
            (lzy, 1, room1),
            (ncr, 1, room2),
            (ncr, 0, LZY),
            (wsx, 0, NCR),
        ]
        sent = []
        for n, (client, target_type, target_id) in enumerate(order * 2):
            sent.append(await send(client, target_type, target_id, f"news {n}"))
        self.assertEqual(await self.found(ncr, "news", limit=50), sent[::-1])
        self.assertEqual(await self.found_all(ncr, "news", limit=3), sent[::-1])

    async def test_limit(self) -> None:
        """
        At most limit matches come, 20 by default, the newest; has_more
        says whether older matches exist.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        sent = []
        for n in range(60):
            sent.append(await send(ncr, 1, room_id, f"item {n}"))
            if n % 4 == 0:
                await send(ncr, 1, room_id, f"noise {n}")
        newest = sent[::-1]
        reply = await self.search(ncr, "item")
        self.assertEqual((reply["messages"], reply["has_more"]), (newest[:20], True))
        for limit in (1, 7, 20, 50):
            reply = await self.search(ncr, "item", limit=limit)
            self.assertEqual((reply["messages"], reply["has_more"]), (newest[:limit], True))
        reply = await self.search(ncr, "item", limit=50, before=newest[49]["id"])
        self.assertEqual((reply["messages"], reply["has_more"]), (newest[50:], False))
        # Two terms: "item" and "5", anywhere: items 5, 15, 25, 35, 45, 50-59.
        fives = [m for m in newest if "5" in m["message"]]
        self.assertEqual(len(fives), 15)
        reply = await self.search(ncr, "item 5", limit=50)
        self.assertEqual((reply["messages"], reply["has_more"]), (fives, False))
        reply = await self.search(ncr, "5 item", limit=15)
        self.assertEqual((reply["messages"], reply["has_more"]), (fives, False))
        reply = await self.search(ncr, "item 5", limit=14)
        self.assertEqual((reply["messages"], reply["has_more"]), (fives[:14], True))

    async def test_paging(self) -> None:
        """
        Paging with before gives every match exactly once, newest first;
        has_more is true on every page but the last, false at the end, also
        when the last page is exactly full.
        """
        _, (ncr,) = await self.users("ncr")
        room_id = await self.room("room1", ncr)
        matching = []
        for n in range(20):
            message = await send(ncr, 1, room_id, f"kappa {n}" if n % 3 != 1 else f"other {n}")
            if n % 3 != 1:
                matching.append(message)
        newest = matching[::-1]
        self.assertEqual(len(newest), 13)
        for limit in (1, 2, 3, 4, 12, 13, 20):
            self.assertEqual(await self.found_all(ncr, "kappa", limit=limit), newest)
        first = await self.search(ncr, "kappa", limit=4)
        self.assertEqual((first["messages"], first["has_more"]), (newest[:4], True))
        second = await self.search(ncr, "kappa", limit=4, before=newest[3]["id"])
        self.assertEqual((second["messages"], second["has_more"]), (newest[4:8], True))
        third = await self.search(ncr, "kappa", limit=5, before=newest[7]["id"])
        self.assertEqual((third["messages"], third["has_more"]), (newest[8:], False))

    async def test_before_any_id(self) -> None:
        """
        before is any id bound: of a matching message (which is excluded),
        of a message that does not match, of one the user cannot read, of
        no message at all; 0 gives nothing.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(lzy, wsx, "wsx")
        room_id = await self.room("room1", ncr)
        texts = ["mu 0", "other 1", "mu 2", "mu 3", "other 4", "mu 5"]
        sent = await self.corpus(ncr, 1, room_id, texts)
        hidden = await send(lzy, 0, WSX, "mu hidden")
        last = await send(ncr, 1, room_id, "mu 6")
        mus = [last, sent[5], sent[3], sent[2], sent[0]]
        cases = [
            (sent[5]["id"], mus[2:]),
            (sent[4]["id"], mus[2:]),
            (sent[1]["id"], mus[4:]),
            (sent[0]["id"], []),
            (hidden["id"], mus[1:]),
            (last["id"] + 1, mus),
            (last["id"] + 1000, mus),
            (MAX_ID, mus),
            (1, []),
            (0, []),
        ]
        for before, wanted in cases:
            reply = await self.search(ncr, "mu", before=before)
            self.assertEqual((reply["messages"], reply["has_more"]), (wanted, False), before)
        reply = await self.search(ncr, "mu", before=sent[4]["id"], limit=2)
        self.assertEqual((reply["messages"], reply["has_more"]), (mus[2:4], True))

    async def test_has_more_counts_only_readable(self) -> None:
        """
        has_more says whether older matches the user can read exist:
        unreadable older matches (others' private messages, a room's
        messages before the user joined) do not count.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, wsx, "wsx")
        room_id = await self.room("room1", ncr)
        for n in range(5):
            await send(ncr, 1, room_id, f"nu early {n}")
            await send(ncr, 0, WSX, f"nu private {n}")
        joined = await lzy.request("join_room", name="room1")
        self.assertEqual(joined["type"], "join_successful")
        late = await send(ncr, 1, room_id, "nu late")
        reply = await self.search(lzy, "nu", limit=1)
        self.assertEqual((reply["messages"], reply["has_more"]), ([late], False))
        reply = await self.search(lzy, "nu", limit=1, target_type=1, target_id=room_id)
        self.assertEqual((reply["messages"], reply["has_more"]), ([late], False))
        reply = await self.search(lzy, "nu", before=late["id"])
        self.assertEqual((reply["messages"], reply["has_more"]), ([], False))
        reply = await self.search(ncr, "nu", limit=1)
        self.assertEqual((reply["messages"], reply["has_more"]), ([late], True))


class ReadabilityTests(Base):
    """
    Only messages the user may read are searched (PROTOCOL.md 10, 11).
    """

    async def test_room_since_latest_join(self) -> None:
        """
        In a room, only messages since the user's latest join are found:
        not those before their first join, not those of an earlier stay
        (their own included), not those while they were away.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room("room1", ncr)
        before_join = await send(ncr, 1, room_id, "alpha 1 before the join")
        await lzy.request("join_room", name="room1")
        first_stay = await send(ncr, 1, room_id, "alpha 2 first stay")
        own = await send(lzy, 1, room_id, "alpha 3 lzy's own")
        quit = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(quit["type"], "me_outroom")
        away = await send(ncr, 1, room_id, "alpha 4 while away")
        rejoined = await lzy.request("join_room", name="room1")
        self.assertEqual(rejoined["type"], "join_successful")
        back = await send(ncr, 1, room_id, "alpha 5 after the return")
        again = await send(lzy, 1, room_id, "alpha 6 lzy again")

        self.assertEqual(await self.found(lzy, "alpha"), [again, back])
        self.assertEqual(
            await self.found(lzy, "alpha", target_type=1, target_id=room_id), [again, back]
        )
        reply = await self.search(lzy, "alpha", limit=2)
        self.assertEqual((reply["messages"], reply["has_more"]), ([again, back], False))
        for query in ("before the join", "first stay", "lzy's own", "while away"):
            self.assertEqual(await self.found(lzy, query), [])
        self.assertEqual(
            await self.found(ncr, "alpha"), [again, back, away, own, first_stay, before_join]
        )
        mine = await readable(lzy, [(1, room_id)])
        self.assertEqual(await self.found(lzy, "alpha"), expected(mine, "alpha"))

    async def test_room_left(self) -> None:
        """
        A room the user left is not searched, their own messages there
        included; a scoped search of it is not_in_room.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        room_id = await self.room("room1", ncr, lzy)
        mine = await send(lzy, 1, room_id, "beta mine")
        yours = await send(ncr, 1, room_id, "beta yours")
        self.assertEqual(await self.found(lzy, "beta"), [yours, mine])
        quit = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(quit["type"], "me_outroom")
        self.assertEqual(await self.found(lzy, "beta"), [])
        await self.assertSearchError(
            lzy, "not_in_room", query="beta", target_type=1, target_id=room_id
        )
        self.assertEqual(await self.found(ncr, "beta"), [yours, mine])

    async def test_added_to_room(self) -> None:
        """
        A user added to a room by a friend finds the messages since they
        were added, not earlier ones.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        room_id = await self.room("room1", ncr)
        await send(ncr, 1, room_id, "gamma early")
        added = await ncr.request("add_friend_to_room", room_id=room_id, user_id=LZY)
        self.assertEqual(added["type"], "ok")
        late = await send(ncr, 1, room_id, "gamma late")
        self.assertEqual(await self.found(lzy, "gamma"), [late])
        self.assertEqual(await self.found(lzy, "gamma", target_type=1, target_id=room_id), [late])
        mine = await readable(lzy, [(1, room_id)])
        self.assertEqual(expected(mine, "gamma"), [late])

    async def test_private_only_with_friends(self) -> None:
        """
        Private conversations are searched with current friends only, both
        directions; never others' private conversations; after
        remove_friend, none of it, on either side.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        await befriend(ncr, wsx, "wsx")
        to_lzy = await send(ncr, 0, LZY, "delta to lzy")
        to_ncr = await send(lzy, 0, NCR, "delta to ncr")
        to_wsx = await send(ncr, 0, WSX, "delta to wsx")
        self.assertEqual(to_lzy["target_id"], LZY)
        self.assertEqual(to_ncr["target_id"], NCR)
        self.assertEqual(await self.found(ncr, "delta"), [to_wsx, to_ncr, to_lzy])
        self.assertEqual(await self.found(lzy, "delta"), [to_ncr, to_lzy])
        self.assertEqual(await self.found(wsx, "delta"), [to_wsx])

        removed = await ncr.request("remove_friend", user_id=LZY)
        self.assertEqual(removed["type"], "friend_removed")
        self.assertEqual(await self.found(ncr, "delta"), [to_wsx])
        self.assertEqual(await self.found(lzy, "delta"), [])
        for client, other in ((ncr, LZY), (lzy, NCR)):
            await self.assertSearchError(
                client, "not_friends", query="delta", target_type=0, target_id=other
            )
        await self.assertSearchError(
            lzy, "not_friends", query="delta", target_type=0, target_id=WSX
        )

        # Friends again: search finds what history returns, no more, no less.
        await befriend(lzy, ncr, "ncr")
        after = await send(lzy, 0, NCR, "delta once more")
        for client, conversations in (
            (ncr, [(0, LZY), (0, WSX)]),
            (lzy, [(0, NCR)]),
            (wsx, [(0, NCR)]),
        ):
            mine = await readable(client, conversations)
            self.assertEqual(await self.found(client, "delta"), expected(mine, "delta"))
        self.assertIn(after, await self.found(ncr, "delta"))

    async def test_system_messages_never_match(self) -> None:
        """
        System messages (created, joined, added, left) are never found; a
        text message saying the same is.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, wsx, "wsx")
        room_id = await self.room("room1", ncr, lzy)
        added = await ncr.request("add_friend_to_room", room_id=room_id, user_id=WSX)
        self.assertEqual(added["type"], "ok")
        quit = await lzy.request("quit_room", room_id=room_id)
        self.assertEqual(quit["type"], "me_outroom")
        systems = [m["message"] for m in await everything(ncr, 1, room_id)]
        self.assertEqual(
            systems,
            [
                "ncr created the room",
                "lzy joined the room",
                "ncr added wsx to the room",
                "lzy left the room",
            ],
        )
        queries = ["joined", "created", "added", "left", "the room", "room", "ncr", "lzy", "wsx"]
        for client in (ncr, wsx):
            for query in queries:
                self.assertEqual(await self.found(client, query), [], query)
        said = await send(wsx, 1, room_id, "I joined the room late, says wsx")
        for client in (ncr, wsx):
            self.assertEqual(await self.found(client, "joined"), [said])
            self.assertEqual(await self.found(client, "the room"), [said])
            self.assertEqual(await self.found(client, "created"), [])

    async def test_deleted_messages_never_match(self) -> None:
        """
        A deleted message is no longer found, by anyone, in a private
        conversation or a room, scoped or not.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        one = await send(ncr, 0, LZY, "epsilon one")
        two = await send(ncr, 0, LZY, "epsilon two")
        self.assertEqual(await self.found(lzy, "epsilon"), [two, one])
        deleted = await ncr.request("delete_message", message_id=one["id"])
        self.assertEqual(deleted["type"], "message_deleted")
        for client, other in ((ncr, LZY), (lzy, NCR)):
            self.assertEqual(await self.found(client, "epsilon"), [two])
            self.assertEqual(await self.found(client, "one"), [])
            self.assertEqual(
                await self.found(client, "epsilon", target_type=0, target_id=other), [two]
            )

        room_id = await self.room("room1", ncr, lzy)
        theirs = await send(lzy, 1, room_id, "epsilon in the room")
        self.assertEqual(await self.found(ncr, "epsilon"), [theirs, two])
        deleted = await ncr.request("delete_message", message_id=theirs["id"])
        self.assertEqual(deleted["type"], "message_deleted")
        for client in (ncr, lzy):
            self.assertEqual(await self.found(client, "epsilon"), [two])
            self.assertEqual(
                await self.found(client, "epsilon", target_type=1, target_id=room_id), []
            )
        reply = await self.search(lzy, "epsilon", limit=1)
        self.assertEqual((reply["messages"], reply["has_more"]), ([two], False))

    async def test_edits_match_their_new_text(self) -> None:
        """
        An edited message matches its current text only, for both sides,
        and comes with its edited_at.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        original = await send(ncr, 0, LZY, "first draft")
        reply = await ncr.request("edit_message", message_id=original["id"], message="final text")
        self.assertEqual(reply["type"], "message_edited")
        edited = reply["message"]
        self.assertRegex(edited["edited_at"] or "", TIME)
        for client in (ncr, lzy):
            self.assertEqual(await self.found(client, "draft"), [])
            self.assertEqual(await self.found(client, "first"), [])
            self.assertEqual(await self.found(client, "final"), [edited])
            self.assertEqual(await self.found(client, "FINAL TEXT"), [edited])
            self.assertEqual(await self.found(client, "first final"), [])
        reply = await ncr.request("edit_message", message_id=original["id"], message="a draft")
        again = reply["message"]
        for client in (ncr, lzy):
            self.assertEqual(await self.found(client, "draft"), [again])
            self.assertEqual(await self.found(client, "final"), [])

        room_id = await self.room("room1", ncr, lzy)
        said = await send(lzy, 1, room_id, "zzz old words")
        reply = await lzy.request("edit_message", message_id=said["id"], message="zzz new words")
        for client in (ncr, lzy):
            self.assertEqual(await self.found(client, "old"), [])
            self.assertEqual(await self.found(client, "new"), [reply["message"]])

    async def test_users_and_rooms_mixed(self) -> None:
        """
        With several users, rooms and private conversations mixed, each
        user's search finds exactly the matching messages that history
        returns them, and nothing of what they cannot read.
        """
        _, (ncr, lzy, wsx, qaz) = await self.users("ncr", "lzy", "wsx", "qaz")
        await befriend(ncr, lzy, "lzy")
        await befriend(lzy, wsx, "wsx")
        await befriend(wsx, qaz, "qaz")
        r1 = await self.room("r1", ncr, lzy)
        r2 = await self.room("r2", lzy, wsx)
        r3 = await self.room("r3", wsx, lzy)
        r4 = await self.room("r4", qaz)
        plan = [
            (ncr, 1, r1),
            (lzy, 1, r1),
            (ncr, 0, LZY),
            (lzy, 0, NCR),
            (lzy, 1, r2),
            (wsx, 1, r2),
            (wsx, 1, r3),
            (lzy, 1, r3),
            (lzy, 0, WSX),
            (wsx, 0, LZY),
            (wsx, 0, QAZ),
            (qaz, 0, WSX),
            (qaz, 1, r4),
        ]
        for n, (client, target_type, target_id) in enumerate(plan):
            await send(client, target_type, target_id, f"Secret {n}, from me")
        # lzy leaves r3 and joins r4 late; ncr joins r2 late.
        await lzy.request("quit_room", room_id=r3)
        await lzy.request("join_room", name="r4")
        await ncr.request("join_room", name="r2")
        for n, (client, target_type, target_id) in enumerate(plan):
            if (target_type, target_id) != (1, r3) or client is not lzy:
                await send(client, target_type, target_id, f"secret {n + 100}, from me too")
        await send(ncr, 1, r2, "SECRET from ncr in r2")

        conversations = {
            NCR: (ncr, [(1, r1), (1, r2), (0, LZY)]),
            LZY: (lzy, [(1, r1), (1, r2), (1, r4), (0, NCR), (0, WSX)]),
            WSX: (wsx, [(1, r2), (1, r3), (0, LZY), (0, QAZ)]),
            QAZ: (qaz, [(1, r4), (0, WSX)]),
        }
        for user_id, (client, targets) in conversations.items():
            mine = await readable(client, targets)
            for query in ("secret", "SECRET from", "me too", "0", "1"):
                want = expected(mine, query)
                self.assertEqual(await self.found_all(client, query, limit=4), want, user_id)
                for target_type, target_id in targets:
                    scoped = await self.found_all(
                        client, query, limit=3, target_type=target_type, target_id=target_id
                    )
                    here = [
                        m
                        for m in want
                        if m["target_type"] == target_type
                        and (
                            m["target_id"] == target_id
                            if target_type == 1
                            else {m["sender_id"], m["target_id"]} == {user_id, target_id}
                        )
                    ]
                    self.assertEqual(scoped, here, (user_id, target_type, target_id))
        # lzy sees nothing of r3 since leaving, nor of wsx and qaz's talk.
        found = await self.found_all(lzy, "secret")
        self.assertFalse([m for m in found if m["target_type"] == 1 and m["target_id"] == r3])
        self.assertFalse(
            [m for m in found if m["target_type"] == 0 and QAZ in (m["sender_id"], m["target_id"])]
        )
        self.assertFalse(
            [
                m
                for m in await self.found_all(ncr, "secret")
                if m["target_type"] == 0 and WSX in (m["sender_id"], m["target_id"])
            ]
        )


class ScopeTests(Base):
    """
    A search of one conversation (target_type and target_id).
    """

    async def test_scoped_to_one_conversation(self) -> None:
        """
        A scoped search finds the matches of that conversation only: of
        one room, or of the private conversation with the friend named by
        target_id (both directions), with before and limit as usual.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, lzy, "lzy")
        await befriend(ncr, wsx, "wsx")
        room1 = await self.room("room1", ncr, lzy)
        room2 = await self.room("room2", ncr)
        by_place: dict[tuple[int, int], list[wire.Payload]] = {}
        order = [
            (ncr, 1, room1, (1, room1)),
            (lzy, 1, room1, (1, room1)),
            (ncr, 1, room2, (1, room2)),
            (ncr, 0, LZY, (0, LZY)),
            (lzy, 0, NCR, (0, LZY)),
            (ncr, 0, WSX, (0, WSX)),
            (wsx, 0, NCR, (0, WSX)),
        ]
        for n in range(3):
            for client, target_type, target_id, place in order:
                message = await send(client, target_type, target_id, f"lambda {n}")
                by_place.setdefault(place, []).insert(0, message)
        for (target_type, target_id), messages in by_place.items():
            self.assertEqual(
                await self.found(ncr, "lambda", target_type=target_type, target_id=target_id),
                messages,
            )
            self.assertEqual(
                await self.found_all(
                    ncr, "lambda", limit=2, target_type=target_type, target_id=target_id
                ),
                messages,
            )
        private = by_place[(0, LZY)]
        self.assertEqual({m["target_id"] for m in private}, {NCR, LZY})
        self.assertEqual(await self.found(lzy, "lambda", target_type=0, target_id=NCR), private)
        self.assertEqual(
            await self.found(lzy, "lambda", target_type=1, target_id=room1), by_place[(1, room1)]
        )
        reply = await self.search(
            ncr, "lambda", target_type=0, target_id=LZY, limit=2, before=private[1]["id"]
        )
        self.assertEqual((reply["messages"], reply["has_more"]), (private[2:4], True))
        self.assertEqual(
            await self.found(ncr, "lambda 1", target_type=1, target_id=room2),
            [by_place[(1, room2)][1]],
        )

    async def test_scoped_errors(self) -> None:
        """
        A scoped search is refused as history is: not_friends, not_in_room,
        invalid_target for oneself; an unknown target is no_such_user or
        no_such_room.
        """
        _, (ncr, lzy, wsx) = await self.users("ncr", "lzy", "wsx")
        await befriend(ncr, wsx, "wsx")
        theirs = await self.room("theirs", lzy)
        left = await self.room("left", ncr, wsx)
        quit = await wsx.request("quit_room", room_id=left)
        self.assertEqual(quit["type"], "me_outroom")
        removed = await wsx.request("remove_friend", user_id=NCR)
        self.assertEqual(removed["type"], "friend_removed")
        cases = [
            (ncr, 0, LZY, "not_friends"),
            (ncr, 0, WSX, "not_friends"),
            (ncr, 1, theirs, "not_in_room"),
            (wsx, 1, left, "not_in_room"),
            (wsx, 1, theirs, "not_in_room"),
            (ncr, 0, NCR, "invalid_target"),
            (ncr, 0, 999, "no_such_user"),
            (ncr, 1, 999, "no_such_room"),
        ]
        for client, target_type, target_id, code in cases:
            target = {"target_type": target_type, "target_id": target_id}
            await self.assertSearchError(client, code, query="abc", **target)
            await self.assertSearchError(client, code, query="abc", limit=5, before=3, **target)
            if code not in ("no_such_user", "no_such_room"):
                await self.assertError(client, code, "history", **target)
        # Nothing changed: the requests that were refused still work when allowed.
        self.assertEqual(await self.found(ncr, "abc", target_type=1, target_id=left), [])


class MessageObjectTests(Base):
    """
    Results are full version 2 Messages (PROTOCOL.md 3), as history returns
    them.
    """

    def assertFullMessage(self, message: wire.Payload) -> None:
        """
        Check that C{message} carries every field of a Message, room_name
        for a room message only.
        """
        fields = ROOM_MESSAGE_FIELDS if message["target_type"] == 1 else PRIVATE_MESSAGE_FIELDS
        self.assertEqual(set(message), fields, message)
        self.assertRegex(message["time"], TIME)

    async def test_same_as_history(self) -> None:
        """
        Each result is the message exactly as history returns it: reply_to
        Quote (of a live or a deleted message), mentions, reactions,
        edited_at, client_msg_id, and room_name for a room message.
        """
        _, (ncr, lzy) = await self.users("ncr", "lzy")
        await befriend(ncr, lzy, "lzy")
        room_id = await self.room("room1", ncr, lzy)
        base = await send(ncr, 1, room_id, "omega base @lzy", client_msg_id="c-1")
        answer = await send(lzy, 1, room_id, "omega answer @ncr", reply_to=base["id"])
        for client, emoji in ((ncr, "👍"), (lzy, "🎉"), (lzy, "👍")):
            reacted = await client.request("react", message_id=answer["id"], emoji=emoji)
            self.assertEqual(reacted["type"], "reactions_changed")
        edited = await lzy.request(
            "edit_message", message_id=answer["id"], message="omega answer edited @ncr"
        )
        self.assertEqual(edited["type"], "message_edited")

        quoted = await send(ncr, 0, LZY, "omega quoted, soon gone")
        reply = await send(lzy, 0, NCR, "omega reply to @ncr", reply_to=quoted["id"])
        deleted = await ncr.request("delete_message", message_id=quoted["id"])
        self.assertEqual(deleted["type"], "message_deleted")
        plain = await send(ncr, 0, LZY, "omega plain", client_msg_id="c-2")
        await drain(ncr)
        await drain(lzy)

        for client, conversations in (
            (ncr, [(1, room_id), (0, LZY)]),
            (lzy, [(1, room_id), (0, NCR)]),
        ):
            mine = await readable(client, conversations)
            results = await self.found(client, "omega")
            self.assertEqual(
                [m["id"] for m in results], [plain["id"], reply["id"], answer["id"], base["id"]]
            )
            for message in results:
                self.assertFullMessage(message)
                self.assertEqual(message, mine[message["id"]])

        room_answer = (await self.found(ncr, "edited"))[0]
        self.assertEqual(room_answer["room_name"], "room1")
        self.assertEqual(room_answer["mentions"], [NCR])
        self.assertEqual(
            room_answer["reactions"],
            [{"emoji": "👍", "user_ids": [NCR, LZY]}, {"emoji": "🎉", "user_ids": [LZY]}],
        )
        self.assertRegex(room_answer["edited_at"] or "", TIME)
        self.assertEqual(
            room_answer["reply_to"],
            {
                "id": base["id"],
                "sender_id": NCR,
                "sender_name": "ncr",
                "message": "omega base @lzy",
                "deleted": False,
            },
        )
        self.assertEqual((await self.found(lzy, "base"))[0]["client_msg_id"], "c-1")
        self.assertEqual((await self.found(lzy, "base"))[0]["mentions"], [LZY])
        private_reply = (await self.found(ncr, "reply"))[0]
        self.assertEqual(
            private_reply["reply_to"],
            {
                "id": quoted["id"],
                "sender_id": NCR,
                "sender_name": "ncr",
                "message": "",
                "deleted": True,
            },
        )
        self.assertEqual(private_reply["target_id"], NCR)
        self.assertNotIn("room_name", private_reply)
        self.assertEqual(await self.found(lzy, "plain"), [plain])
        self.assertEqual(plain["client_msg_id"], "c-2")


# Every suite runs on PostgreSQL too.
on_postgresql(
    globals(),
    ValidationTests,
    TermTests,
    OrderAndPagingTests,
    ReadabilityTests,
    ScopeTests,
    MessageObjectTests,
)
