"""
Full-text search of our messages (PROTOCOL.md section 11), without Qt.

The server finds the messages; what is here is what the client needs around
that: the rule a query must keep, a L{SearchRequest} naming one page asked
for (so a reply to a query the user has since replaced can be told apart
and dropped), the L{SearchPage} a reply brings, and where the terms of a
query are in a message's text, found the way the server matches them:
every term as a literal substring, ignoring case by full Unicode case
folding (C{str.casefold}), so that the client highlights what the server
matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from client.state import Key, Message, Payload

#: The longest query the server takes, in code points.
MAX_QUERY: Final = 200
#: Messages asked for in one page of results (the server's default).
SEARCH_PAGE: Final = 20
#: Code points of a message shown in a result before it is cut.
SNIPPET_LENGTH: Final = 110
#: Code points kept before the first match when a long message is cut.
SNIPPET_CONTEXT: Final = 30

#: Where something is in a text: C{(start, end)}, as for slicing.
Span = tuple[int, int]


def valid_query(query: str) -> bool:
    """
    @return: whether the server takes C{query}: 1-200 code points, not
        whitespace only.
    """
    return 0 < len(query) <= MAX_QUERY and bool(query.split())


def search_terms(query: str) -> tuple[str, ...]:
    """
    @return: the terms of C{query} as the server matches them: split at
        whitespace, case folded, each once, in the order typed.
    """
    terms: list[str] = []
    for word in query.split():
        term = word.casefold()
        if term not in terms:
            terms.append(term)
    return tuple(terms)


def find_terms(text: str, terms: tuple[str, ...]) -> list[Span]:
    """
    Find every occurrence of every term in C{text}, ignoring case as the
    server does.

    Case folding may change a text's length (C{ß} folds to C{ss}), so the
    text is folded one character at a time, remembering which character
    each folded one came from: a match is given back in C{text}'s own
    positions, covering whole characters.

    @param terms: case-folded terms, as L{search_terms} makes them.
    @return: the spans of C{text} that match, sorted, overlapping and
        touching ones merged.
    """
    folded: list[str] = []
    origin: list[int] = []
    for index, character in enumerate(text):
        piece = character.casefold()
        folded.append(piece)
        origin.extend([index] * len(piece))
    haystack = "".join(folded)
    found: list[Span] = []
    for term in terms:
        if not term:
            continue
        start = haystack.find(term)
        while start != -1:
            found.append((origin[start], origin[start + len(term) - 1] + 1))
            start = haystack.find(term, start + 1)
    merged: list[Span] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def snippet(
    text: str,
    terms: tuple[str, ...],
    length: int = SNIPPET_LENGTH,
    context: int = SNIPPET_CONTEXT,
) -> str:
    """
    @return: C{text} on one line (runs of whitespace made one space) and,
        when longer than C{length}, cut to about C{length} code points
        around its first match, at word boundaries where it can be, with
        C{…} where something was left out.
    """
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    spans = find_terms(flat, terms)
    first = spans[0][0] if spans else 0
    start = max(0, min(first - context, len(flat) - length))
    if start > 0:
        # Start after a space, unless that would cut into the match.
        space = flat.find(" ", start, first)
        if space != -1:
            start = space + 1
    end = min(len(flat), start + length)
    if end < len(flat):
        space = flat.rfind(" ", max(start + length // 2, spans[0][1] if spans else 0), end)
        if space != -1:
            end = space
    shown = flat[start:end].strip()
    return ("…" if start > 0 else "") + shown + ("…" if end < len(flat) else "")


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """
    One page of search results asked for.

    @ivar serial: tells this request from every other one, even one for
        the same query: the reply is shown only if it answers the latest.
    @ivar key: the conversation searched, or L{None} for all of ours.
    @ivar before: for a later page, the oldest message id already shown.
    """

    serial: int
    query: str
    key: Key | None = None
    before: int | None = None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """
    The messages a C{search_results} reply brings, newest first, and
    whether older matches exist.
    """

    messages: tuple[Message, ...]
    has_more: bool

    @classmethod
    def from_payload(cls, payload: Payload) -> SearchPage:
        """
        @return: the page a C{search_results} reply describes.
        """
        messages = tuple(Message.from_payload(m) for m in payload.get("messages", ()))
        return cls(messages, bool(payload.get("has_more")))
