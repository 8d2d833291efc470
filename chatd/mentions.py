"""
The C{@name} mentions of a message's text (PROTOCOL.md section 10).

A mention is a C{@} at the start of the text or after a character that is
not an ASCII letter, digit or C{_}, then a username (1-32 of those
characters) not followed by another of them.  Which of the names are users
who can read the conversation is the server's business.
"""

from __future__ import annotations

import re

_MENTION = re.compile(r"(?<![A-Za-z0-9_])@([A-Za-z0-9_]{1,32})(?![A-Za-z0-9_])", re.ASCII)


def mentioned_names(text: str) -> list[str]:
    """
    @return: the names mentioned in C{text}, lower-cased, each once, in the
        order they first appear.
    """
    return list(dict.fromkeys(name.lower() for name in _MENTION.findall(text)))
