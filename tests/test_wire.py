"""
The wire format of PROTOCOL.md sections 1, 2, 4 and 7: decoding, the field
accessors, encoding, framing, the value rules and the error codes.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chatd import wire
from chatd.wire import ChatError

#: Hypothesis runs the same examples every time and stores nothing on disk.
DETERMINISTIC = settings(max_examples=300, deadline=None, derandomize=True, database=None)

#: The codes listed in PROTOCOL.md section 7, copied by hand.
SECTION_7_CODES = {
    "bad_frame",
    "frame_too_large",
    "unknown_type",
    "invalid_field",
    "not_authenticated",
    "already_authenticated",
    "login_failed",
    "username_taken",
    "invalid_username",
    "invalid_password",
    "no_such_user",
    "no_such_room",
    "room_exists",
    "invalid_room_name",
    "invalid_message",
    "invalid_target",
    "not_friends",
    "already_friends",
    "no_pending_request",
    "not_in_room",
    "already_in_room",
    "rate_limited",
    "internal_error",
    # Version 2, as each section is built.
    "no_such_message",
    "invalid_token",
    "not_allowed",
    "account_disabled",
    "no_such_file",
    "file_too_large",
    "upload_incomplete",
    "quota_exceeded",
}


def nested(depth: int) -> bytes:
    """
    @return: a request whose arrays and objects nest exactly C{depth} levels
        deep, the request object itself being level 1.
    """
    inner = depth - 1
    return b'{"type":"ping","a":' + b"[" * inner + b"]" * inner + b"}"


def nested_objects(depth: int) -> bytes:
    """
    @return: like L{nested}, with objects in place of arrays.
    """
    inner = depth - 1
    return b'{"type":"ping"' + b',"a":{"b":0' * inner + b"}" * inner + b"}"


class DecodeTestsMixin:
    """
    Assertions on L{wire.decode}.
    """

    def assertBadFrame(self: Any, payload: bytes) -> None:
        """
        Assert that C{payload} is refused with C{bad_frame}.
        """
        with self.assertRaises(ChatError) as caught:
            wire.decode(payload)
        self.assertEqual(caught.exception.code, wire.BAD_FRAME)


class DecodeTests(DecodeTestsMixin, SynchronousTestCase):
    """
    L{wire.decode} accepts exactly the payloads PROTOCOL.md sections 1 and 2
    allow.
    """

    def test_object_with_type(self) -> None:
        """
        A JSON object with a string type decodes to that object.
        """
        self.assertEqual(
            wire.decode(b'{"type":"login","id":1,"username":"ncr"}'),
            {"type": "login", "id": 1, "username": "ncr"},
        )

    def test_whitespace_around_object(self) -> None:
        """
        JSON whitespace around the object is allowed, as RFC 8259 says.
        """
        self.assertEqual(wire.decode(b' \r\n\t{"type" : "ping"} \n'), {"type": "ping"})

    def test_array(self) -> None:
        """
        A JSON array, even of objects, is not a request.
        """
        self.assertBadFrame(b'[{"type":"ping"}]')

    def test_string(self) -> None:
        """
        A JSON string is not a request.
        """
        self.assertBadFrame(b'"ping"')

    def test_number(self) -> None:
        """
        A JSON number is not a request.
        """
        self.assertBadFrame(b"1")

    def test_null_and_booleans(self) -> None:
        """
        The JSON literals null, true and false are not requests.
        """
        for payload in (b"null", b"true", b"false"):
            self.assertBadFrame(payload)

    def test_no_type(self) -> None:
        """
        An object without a type is refused.
        """
        self.assertBadFrame(b'{"id":1,"username":"ncr"}')

    def test_empty_object(self) -> None:
        """
        The empty object has no type and is refused.
        """
        self.assertBadFrame(b"{}")

    def test_type_not_a_string(self) -> None:
        """
        A type that is a number, null, a boolean, an array or an object is
        refused.
        """
        for kind in (b"1", b"null", b"true", b'["ping"]', b'{"a":"ping"}'):
            self.assertBadFrame(b'{"type":' + kind + b"}")

    def test_type_is_case_sensitive(self) -> None:
        """
        Keys are case-sensitive: "Type" is not "type".
        """
        self.assertBadFrame(b'{"Type":"ping"}')

    def test_empty_frame(self) -> None:
        """
        An empty payload is refused.
        """
        self.assertBadFrame(b"")

    def test_whitespace_only(self) -> None:
        """
        A payload of whitespace only is refused.
        """
        self.assertBadFrame(b" \n ")

    def test_invalid_utf8(self) -> None:
        """
        A payload that is not UTF-8 is refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\xff"}')

    def test_overlong_utf8(self) -> None:
        """
        An overlong UTF-8 sequence (here a disguised "/") is refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\xc0\xaf"}')

    def test_encoded_surrogate(self) -> None:
        """
        A surrogate encoded directly in UTF-8 bytes (CESU-8) is refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\xed\xa0\x80"}')

    def test_latin1(self) -> None:
        """
        A payload in Latin-1 rather than UTF-8 is refused.
        """
        self.assertBadFrame('{"type":"ping","a":"é"}'.encode("latin-1"))

    def test_bom(self) -> None:
        """
        A payload starting with a UTF-8 byte order mark is refused.
        """
        self.assertBadFrame(b'\xef\xbb\xbf{"type":"ping"}')

    def test_nan(self) -> None:
        """
        NaN is not JSON.
        """
        self.assertBadFrame(b'{"type":"ping","a":NaN}')

    def test_infinity(self) -> None:
        """
        Infinity is not JSON.
        """
        self.assertBadFrame(b'{"type":"ping","a":Infinity}')

    def test_minus_infinity(self) -> None:
        """
        -Infinity is not JSON.
        """
        self.assertBadFrame(b'{"type":"ping","a":[-Infinity]}')

    def test_trailing_data(self) -> None:
        """
        Anything after the object, such as a second object, is refused.
        """
        self.assertBadFrame(b'{"type":"ping"}{"type":"ping"}')

    def test_single_quotes(self) -> None:
        """
        JavaScript-style single-quoted strings are not JSON.
        """
        self.assertBadFrame(b"{'type':'ping'}")

    def test_control_character_in_string(self) -> None:
        """
        An unescaped control character inside a string is not JSON.
        """
        self.assertBadFrame(b'{"type":"ping","a":"x\ny"}')

    def test_nesting_33_deep(self) -> None:
        """
        Arrays nesting 33 levels deep (the request object being level 1) are
        refused.
        """
        self.assertBadFrame(nested(33))

    def test_nesting_32_deep(self) -> None:
        """
        Nesting exactly 32 levels deep is accepted.
        """
        self.assertEqual(wire.decode(nested(32))["type"], "ping")

    def test_nesting_32_deep_among_others(self) -> None:
        """
        Nesting exactly 32 levels deep is accepted when other arrays and
        objects sit beside the deepest one.
        """
        payload = nested(32)[:-1] + b',"b":[{},[]],"c":{"d":[]}}'
        self.assertEqual(wire.decode(payload)["b"], [{}, []])

    def test_nesting_33_deep_late(self) -> None:
        """
        A payload is refused when only its last field nests 33 levels deep.
        """
        payload = b'{"type":"ping","b":[{},[]],"a":' + b"[" * 32 + b"]" * 32 + b"}"
        self.assertBadFrame(payload)

    def test_objects_nesting_33_deep(self) -> None:
        """
        Objects nesting 33 levels deep are refused like arrays.
        """
        self.assertBadFrame(nested_objects(33))

    def test_objects_nesting_32_deep(self) -> None:
        """
        Objects nesting exactly 32 levels deep are accepted.
        """
        self.assertEqual(wire.decode(nested_objects(32))["type"], "ping")

    def test_empty_container_counts_as_a_level(self) -> None:
        """
        An empty array at level 33 makes the payload too deep.
        """
        self.assertBadFrame(b'{"type":"ping","a":' + b"[" * 32 + b"]" * 32 + b"}")

    def test_very_deep_nesting(self) -> None:
        """
        Nesting far beyond Python's recursion limit is refused as C{bad_frame},
        not with a crash.
        """
        self.assertBadFrame(b'{"type":"ping","a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    def test_brackets_in_strings_are_not_nesting(self) -> None:
        """
        Brackets inside strings do not count as nesting.
        """
        text = "[{" * 40
        request = json.dumps({"type": "ping", "a": text}).encode()
        self.assertEqual(wire.decode(request)["a"], text)

    def test_lone_surrogate_in_value(self) -> None:
        """
        A string value holding a lone high surrogate is refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\\ud800"}')

    def test_lone_surrogate_in_key(self) -> None:
        """
        A key holding a lone surrogate is refused.
        """
        self.assertBadFrame(b'{"type":"ping","\\ud800":1}')

    def test_lone_surrogate_in_type(self) -> None:
        """
        A type holding a lone surrogate is refused.
        """
        self.assertBadFrame(b'{"type":"ping\\ud800"}')

    def test_lone_low_surrogate_upper_case(self) -> None:
        """
        A lone low surrogate, escaped in upper case, is refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":["x\\uDC00y"]}')

    def test_reversed_surrogate_pair(self) -> None:
        """
        A low surrogate followed by a high one is two lone surrogates.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\\udc00\\ud800"}')

    def test_high_surrogate_then_other_escape(self) -> None:
        """
        A high surrogate followed by an escape that is not a low surrogate is
        refused.
        """
        self.assertBadFrame(b'{"type":"ping","a":"\\ud800\\u0041"}')

    def test_surrogate_pair(self) -> None:
        """
        A valid escaped surrogate pair decodes to its one code point.
        """
        self.assertEqual(wire.decode(b'{"type":"ping","a":"\\ud83d\\ude00"}')["a"], "\U0001f600")

    def test_escaped_backslash_before_u(self) -> None:
        """
        An escaped backslash followed by "ud800" is plain text, not a
        surrogate.
        """
        self.assertEqual(wire.decode(b'{"type":"ping","a":"\\\\ud800"}')["a"], "\\ud800")

    def test_non_ascii(self) -> None:
        """
        Non-ASCII UTF-8 text decodes to the same characters.
        """
        text = "héllo 世界 \U0001f600"
        payload = ('{"type":"ping","a":"' + text + '"}').encode("utf-8")
        self.assertEqual(wire.decode(payload)["a"], text)

    def test_unknown_fields_kept(self) -> None:
        """
        Unknown extra fields do not make a request invalid.
        """
        request = wire.decode(b'{"type":"ping","future":{"x":[1,2]},"id":3}')
        self.assertEqual(request["type"], "ping")
        self.assertEqual(wire.request_id(request), 3)

    @DETERMINISTIC
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, payload: bytes) -> None:
        """
        Decoding any bytes either returns an object with a string type or
        raises C{bad_frame}, never anything else.
        """
        try:
            request = wire.decode(payload)
        except ChatError as e:
            self.assertEqual(e.code, wire.BAD_FRAME)
        else:
            self.assertIsInstance(request, dict)
            self.assertIsInstance(request["type"], str)

    @DETERMINISTIC
    @given(
        st.one_of(
            st.text(max_size=50).map(lambda s: s.encode("utf-8")),
            st.text(alphabet='{}[]":,0123456789 -.eEtrufalsn\\u', max_size=60).map(
                lambda s: ('{"type":"x",' + s).encode()
            ),
        )
    )
    def test_json_like_text(self, payload: bytes) -> None:
        """
        Decoding text close to JSON either returns an object with a string
        type or raises C{bad_frame}.
        """
        try:
            request = wire.decode(payload)
        except ChatError as e:
            self.assertEqual(e.code, wire.BAD_FRAME)
        else:
            self.assertIsInstance(request["type"], str)


# Mostly plain strings and finite numbers; sometimes any Python string (lone
# surrogates included), NaN or an infinity.
_TEXT = st.one_of(
    st.text(max_size=8),
    st.text(max_size=8),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=8),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.text(max_size=8),
    st.floats(),
    _TEXT,
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_TEXT, children, max_size=4),
    ),
    max_leaves=12,
)
# Mostly objects, many of them with a type, so that both outcomes are common.
_REQUESTS = st.one_of(
    _VALUES,
    st.dictionaries(_TEXT, _VALUES, max_size=4),
    st.builds(
        lambda kind, rest: {**rest, "type": kind},
        st.one_of(_TEXT, _SCALARS),
        st.dictionaries(_TEXT, _VALUES, max_size=3),
    ),
    st.builds(
        lambda kind, rest: {**rest, "type": kind},
        _TEXT,
        st.dictionaries(_TEXT, _VALUES, max_size=3),
    ),
)


def _depth(value: Any) -> int:
    """
    @return: how many levels of arrays and objects C{value} nests (0 for a
        scalar), computed without recursion.
    """
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _acceptable(value: Any) -> bool:
    """
    @return: whether a decoded JSON value is a request PROTOCOL.md accepts:
        an object with a string type, at most 32 deep, with finite numbers
        and strings (keys included) free of lone surrogates.
    """
    if not (isinstance(value, dict) and isinstance(value.get("type"), str)):
        return False
    if _depth(value) > 32:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in item):
            return False
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class JSONValuesTests(SynchronousTestCase):
    """
    L{wire.decode} on arbitrary values encoded by L{json.dumps}.
    """

    @DETERMINISTIC
    @given(_REQUESTS, st.booleans())
    def test_json_values(self, value: Any, ascii_only: bool) -> None:
        """
        A value encoded by json.dumps decodes to what json.loads reads from
        it when that is an acceptable request, and is refused with
        C{bad_frame} otherwise.
        """
        text = json.dumps(value, ensure_ascii=ascii_only)
        payload = text.encode("utf-8", "surrogatepass")
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            # Raw surrogates make the bytes invalid UTF-8.
            expected = None
        else:
            reference = json.loads(text)
            expected = reference if _acceptable(reference) else None
        try:
            request = wire.decode(payload)
        except ChatError as e:
            self.assertEqual(e.code, wire.BAD_FRAME)
            self.assertIsNone(expected, f"refused {payload!r}")
        else:
            self.assertEqual(request, expected)

    @DETERMINISTIC
    @given(
        st.integers(min_value=20, max_value=40).flatmap(
            lambda n: st.lists(st.booleans(), min_size=n, max_size=n)
        )
    )
    def test_nesting(self, shape: list[bool]) -> None:
        """
        A request nesting arrays and objects in any mix (beside a few shallow
        ones) is accepted exactly when it is at most 32 levels deep.
        """
        value: Any = 0
        for is_list in shape:
            value = [value] if is_list else {"k": value}
        request = {"type": "ping", "a": value, "b": [{}, []]}
        payload = json.dumps(request).encode()
        if len(shape) + 1 <= 32:
            self.assertEqual(wire.decode(payload), request)
        else:
            with self.assertRaises(ChatError) as caught:
                wire.decode(payload)
            self.assertEqual(caught.exception.code, wire.BAD_FRAME)


class FieldTests(SynchronousTestCase):
    """
    The field accessors take only the JSON types PROTOCOL.md section 2 allows
    and raise C{invalid_field} otherwise.
    """

    def assertInvalidField(self, accessor: Any, request: Any, *args: Any) -> None:
        """
        Assert that C{accessor(request, *args)} raises C{invalid_field}.
        """
        with self.assertRaises(ChatError) as caught:
            accessor(request, *args)
        self.assertEqual(caught.exception.code, wire.INVALID_FIELD)

    def test_integer_accepts_zero(self) -> None:
        """
        0 is the smallest integer field value.
        """
        self.assertEqual(wire.integer(wire.decode(b'{"type":"x","n":0}'), "n"), 0)

    def test_integer_accepts_largest(self) -> None:
        """
        2**53 - 1 is the largest integer field value.
        """
        payload = b'{"type":"x","n":%d}' % (2**53 - 1)
        self.assertEqual(wire.integer(wire.decode(payload), "n"), 2**53 - 1)

    def test_integer_rejects_2_53(self) -> None:
        """
        2**53 is out of range.
        """
        payload = b'{"type":"x","n":%d}' % 2**53
        self.assertInvalidField(wire.integer, wire.decode(payload), "n")

    def test_integer_rejects_negative(self) -> None:
        """
        -1 is out of range.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":-1}'), "n")

    def test_integer_rejects_float(self) -> None:
        """
        1.0 is a JSON number but not a JSON integer.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":1.0}'), "n")

    def test_integer_rejects_exponent(self) -> None:
        """
        1e2 is a JSON number but not a JSON integer.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":1e2}'), "n")

    def test_integer_rejects_string(self) -> None:
        """
        "1" is a string, not an integer.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":"1"}'), "n")

    def test_integer_rejects_true(self) -> None:
        """
        true is a boolean, not the integer 1.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":true}'), "n")

    def test_integer_rejects_false(self) -> None:
        """
        false is a boolean, not the integer 0.
        """
        self.assertInvalidField(wire.integer, wire.decode(b'{"type":"x","n":false}'), "n")

    def test_integer_missing(self) -> None:
        """
        A missing integer field without a default is C{invalid_field}.
        """
        self.assertInvalidField(wire.integer, {"type": "x"}, "n")

    def test_integer_default(self) -> None:
        """
        A missing integer field with a default takes the default.
        """
        self.assertEqual(wire.integer({"type": "x"}, "n", 50), 50)

    def test_integer_present_despite_default(self) -> None:
        """
        A present integer field wins over the default, and is still checked.
        """
        self.assertEqual(wire.integer({"type": "x", "n": 7}, "n", 50), 7)
        self.assertInvalidField(wire.integer, {"type": "x", "n": "7"}, "n", 50)

    def test_optional_integer(self) -> None:
        """
        An optional integer field is L{None} when absent and checked when
        present.
        """
        self.assertIsNone(wire.optional_integer({"type": "x"}, "n"))
        self.assertEqual(wire.optional_integer({"type": "x", "n": 0}, "n"), 0)
        self.assertInvalidField(wire.optional_integer, {"type": "x", "n": 1.0}, "n")

    def test_boolean_accepts_true_and_false(self) -> None:
        """
        true and false are the boolean values.
        """
        request = wire.decode(b'{"type":"x","t":true,"f":false}')
        self.assertIs(wire.boolean(request, "t", False), True)
        self.assertIs(wire.boolean(request, "f", True), False)

    def test_boolean_rejects_others(self) -> None:
        """
        1, 0, "true" and an empty object are not booleans.
        """
        for value in (b"1", b"0", b'"true"', b'"false"', b"{}"):
            request = wire.decode(b'{"type":"x","b":' + value + b"}")
            self.assertInvalidField(wire.boolean, request, "b", True)

    def test_boolean_default(self) -> None:
        """
        A missing boolean field takes its default.
        """
        self.assertIs(wire.boolean({"type": "x"}, "b", True), True)
        self.assertIs(wire.boolean({"type": "x"}, "b", False), False)

    def test_string_missing(self) -> None:
        """
        A missing string field is C{invalid_field}.
        """
        self.assertInvalidField(wire.string, {"type": "login"}, "username")

    def test_string_mistyped(self) -> None:
        """
        A string field holding a number, null or an array is C{invalid_field}.
        """
        for value in (5, None, ["ncr"]):
            self.assertInvalidField(wire.string, {"type": "login", "username": value}, "username")

    def test_string(self) -> None:
        """
        A string field returns its value, the empty string included.
        """
        self.assertEqual(wire.string({"type": "x", "s": "ncr"}, "s"), "ncr")
        self.assertEqual(wire.string({"type": "x", "s": ""}, "s"), "")

    def test_optional_string(self) -> None:
        """
        An optional string field is L{None} when absent and checked when
        present.
        """
        self.assertIsNone(wire.optional_string({"type": "x"}, "s"))
        self.assertInvalidField(wire.optional_string, {"type": "x", "s": 1}, "s")

    def test_unknown_fields_ignored(self) -> None:
        """
        Extra fields beside the ones a request needs change nothing.
        """
        request = {"type": "login", "username": "ncr", "password": "hunter22", "x": [1]}
        self.assertEqual(wire.string(request, "username"), "ncr")

    def test_request_id(self) -> None:
        """
        The request id is a JSON integer in [0, 2**53); anything else reads as
        no id.
        """
        self.assertEqual(wire.request_id({"type": "x", "id": 0}), 0)
        self.assertEqual(wire.request_id({"type": "x", "id": 2**53 - 1}), 2**53 - 1)
        for bad in ("1", 1.0, True, -1, 2**53, None):
            self.assertIsNone(wire.request_id({"type": "x", "id": bad}))
        self.assertIsNone(wire.request_id({"type": "x"}))


class EncodeTests(SynchronousTestCase):
    """
    What the server writes: compact UTF-8 JSON in length-prefixed frames.
    """

    def test_compact(self) -> None:
        """
        Encoding leaves no spaces between tokens.
        """
        self.assertEqual(
            wire.encode({"type": "history", "messages": [1, 2], "has_more": False, "x": None}),
            b'{"type":"history","messages":[1,2],"has_more":false,"x":null}',
        )

    def test_utf8_not_escaped(self) -> None:
        """
        Non-ASCII text is written as UTF-8, not as \\u escapes.
        """
        text = "héllo 世界 \U0001f600"
        self.assertEqual(
            wire.encode({"type": "x", "m": text}),
            ('{"type":"x","m":"' + text + '"}').encode("utf-8"),
        )

    def test_no_nan(self) -> None:
        """
        The server refuses to encode NaN, which is not JSON.
        """
        self.assertRaises(ValueError, wire.encode, {"type": "x", "n": float("nan")})

    def test_round_trip(self) -> None:
        """
        What the server encodes, it decodes to the same payload.
        """
        payload = {"type": "x", "a": [{"b": "\U0001f600"}], "n": 2**53 - 1, "t": True}
        self.assertEqual(wire.decode(wire.encode(payload)), payload)

    def test_frame(self) -> None:
        """
        A frame is a 4-byte big-endian length of the encoded payload, then
        the payload.
        """
        payload = {"type": "pong", "id": 1}
        data = wire.frame(payload)
        self.assertEqual(data, b'\x00\x00\x00\x16{"type":"pong","id":1}')

    def test_frame_counts_bytes(self) -> None:
        """
        The length prefix counts bytes of UTF-8, not characters.
        """
        data = wire.frame({"type": "é\U0001f600"})
        (length,) = struct.unpack("!I", data[:4])
        self.assertEqual(length, len(data) - 4)
        self.assertEqual(length, len('{"type":""}') + 2 + 4)

    def test_spliced(self) -> None:
        """
        A spliced payload frames as L{wire.frame} frames the same payload:
        without an id as a push, with one (after the type) as a reply.
        """
        message = {"id": 7, "message": "é\U0001f600"}
        spliced = wire.Spliced("on_new_message", "message", wire.encode(message))
        self.assertEqual(
            spliced.frame(), wire.frame({"type": "on_new_message", "message": message})
        )
        self.assertEqual(
            spliced.frame(0),
            wire.frame({"type": "on_new_message", "id": 0, "message": message}),
        )
        self.assertEqual(
            spliced.frame(2**53 - 1),
            wire.frame({"type": "on_new_message", "id": 2**53 - 1, "message": message}),
        )

    def test_error_payload(self) -> None:
        """
        An error payload carries the code, the default message, and the id
        only when there is one.
        """
        self.assertEqual(
            wire.error(wire.NOT_FRIENDS, request_id=0),
            {"type": "error", "id": 0, "code": "not_friends", "message": "You are not friends."},
        )
        self.assertNotIn("id", wire.error(wire.BAD_FRAME))


class ErrorCodeTests(SynchronousTestCase):
    """
    The error codes are exactly those of PROTOCOL.md section 7.
    """

    def test_codes(self) -> None:
        """
        L{wire.MESSAGES} holds every section 7 code and nothing more.
        """
        self.assertEqual(set(wire.MESSAGES), SECTION_7_CODES)

    def test_messages(self) -> None:
        """
        Every code has a non-empty sentence for people.
        """
        for code, message in wire.MESSAGES.items():
            self.assertIsInstance(message, str, code)
            self.assertTrue(message.strip(), code)

    def test_unknown_code(self) -> None:
        """
        A L{ChatError} cannot be made with a code outside section 7.
        """
        self.assertRaises(ValueError, ChatError, "no_such_code")

    def test_default_message(self) -> None:
        """
        A L{ChatError} without a message takes the code's sentence.
        """
        error = ChatError(wire.RATE_LIMITED)
        self.assertEqual(
            (error.code, error.message), ("rate_limited", wire.MESSAGES["rate_limited"])
        )


class NameTests(SynchronousTestCase):
    """
    Usernames and room names: 1-32 ASCII letters, digits and underscores.
    """

    def test_boundaries(self) -> None:
        """
        1 and 32 characters are allowed, 0 and 33 are not.
        """
        self.assertTrue(wire.valid_name("a"))
        self.assertTrue(wire.valid_name("a" * 32))
        self.assertFalse(wire.valid_name(""))
        self.assertFalse(wire.valid_name("a" * 33))

    def test_allowed_characters(self) -> None:
        """
        Letters of both cases, digits and underscores are allowed.
        """
        self.assertTrue(wire.valid_name("Ab_09_zZ"))
        self.assertTrue(wire.valid_name("_"))
        self.assertTrue(wire.valid_name("123"))

    def test_other_ascii(self) -> None:
        """
        Spaces, hyphens, dots and other ASCII punctuation are refused.
        """
        for name in ("a b", "a-b", "a.b", "a@b", "a/b", " a", "a\t"):
            self.assertFalse(wire.valid_name(name), name)

    def test_trailing_newline(self) -> None:
        """
        A name with a trailing newline is refused.
        """
        self.assertFalse(wire.valid_name("ncr\n"))

    def test_non_ascii(self) -> None:
        """
        Non-ASCII letters and digits are refused.
        """
        for name in ("é", "ncré", "名前", "\u0661", "\uff4e\uff43\uff52", "\u212a"):
            self.assertFalse(wire.valid_name(name), name)

    def test_nul(self) -> None:
        """
        A NUL character is refused.
        """
        self.assertFalse(wire.valid_name("a\0"))


class PasswordTests(SynchronousTestCase):
    """
    Passwords: 6-128 characters, any Unicode, not all whitespace.
    """

    def test_boundaries(self) -> None:
        """
        6 and 128 characters are allowed, 5 and 129 are not.
        """
        self.assertTrue(wire.valid_password("a" * 6))
        self.assertTrue(wire.valid_password("a" * 128))
        self.assertFalse(wire.valid_password("a" * 5))
        self.assertFalse(wire.valid_password("a" * 129))
        self.assertFalse(wire.valid_password(""))

    def test_whitespace_only(self) -> None:
        """
        A password of whitespace only is refused, whatever its length.
        """
        self.assertFalse(wire.valid_password(" " * 6))
        self.assertFalse(wire.valid_password(" \t\n\u3000  "))

    def test_whitespace_inside(self) -> None:
        """
        Whitespace among other characters is allowed.
        """
        self.assertTrue(wire.valid_password(" pass word "))

    def test_unicode(self) -> None:
        """
        Any Unicode is allowed, counted in code points: six emoji make six
        characters.
        """
        self.assertTrue(wire.valid_password("pässwörd"))
        self.assertTrue(wire.valid_password("\U0001f600" * 6))
        self.assertFalse(wire.valid_password("\U0001f600" * 5))
        self.assertTrue(wire.valid_password("\U0001f600" * 128))
        self.assertFalse(wire.valid_password("\U0001f600" * 129))


class MessageTextTests(SynchronousTestCase):
    """
    Message text: 1-4000 code points, not whitespace only, no NUL.
    """

    def test_boundaries(self) -> None:
        """
        1 and 4000 characters are allowed, 0 and 4001 are not.
        """
        self.assertTrue(wire.valid_message("a"))
        self.assertTrue(wire.valid_message("a" * 4000))
        self.assertFalse(wire.valid_message(""))
        self.assertFalse(wire.valid_message("a" * 4001))

    def test_emoji_are_one_code_point(self) -> None:
        """
        An emoji outside the BMP counts as one character, not two UTF-16
        units or four UTF-8 bytes.
        """
        self.assertTrue(wire.valid_message("\U0001f600" * 4000))
        self.assertFalse(wire.valid_message("\U0001f600" * 4001))

    def test_whitespace_only(self) -> None:
        """
        Text of whitespace only, Unicode spaces included, is refused.
        """
        for text in (" ", "\n", " \t\r\n ", "\u3000\u00a0"):
            self.assertFalse(wire.valid_message(text), repr(text))

    def test_whitespace_around(self) -> None:
        """
        Text with whitespace around other characters is allowed.
        """
        self.assertTrue(wire.valid_message("  hello \n"))

    def test_nul(self) -> None:
        """
        A NUL anywhere is refused.
        """
        self.assertFalse(wire.valid_message("a\0b"))
        self.assertFalse(wire.valid_message("\0"))


class EmojiTests(SynchronousTestCase):
    """
    A reaction's emoji: 1-32 code points, no White_Space, no control
    character (PROTOCOL.md section 10).
    """

    def test_symbols_and_words(self) -> None:
        """
        A single emoji, a sequence joined by U+200D, a flag, a word and 32
        code points are allowed.
        """
        for emoji in [
            "\U0001f44d",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467",
            "\U0001f1e8\U0001f1f3",
            "+1",
            "好",
            "x" * 32,
        ]:
            self.assertTrue(wire.valid_emoji(emoji), repr(emoji))

    def test_refused(self) -> None:
        """
        Empty, 33 code points, any Unicode whitespace and any control
        character are refused.
        """
        for emoji in [
            "",
            "x" * 33,
            "a b",
            "\u00a0",
            "\u3000",
            "\u2028",
            "x\t",
            "\x07",
            "\x85",
            "\x7f",
        ]:
            self.assertFalse(wire.valid_emoji(emoji), repr(emoji))
