"""
The session tokens the client keeps between runs (PROTOCOL.md section 13),
without Qt.

One JSON file in the user's configuration folder holds, for each server
(C{host:port}), the token of each user who chose to stay logged in, the
one who logged in most recently last:

    {"version": 1, "servers": {"localhost:8998": {"ncr": "q3Jx…"}}}

Only tokens are kept, never a password.  The file is readable by its owner
only (mode 0600), and every change writes a new file beside it and renames
it over the old one, so that a crash leaves either the old file or the new
one, never half of one.  It is read and written only when a session starts,
is resumed or ends and when the password changes: never per message.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Final

from twisted.logger import Logger

#: The name of the file in the configuration folder.
TOKEN_FILE: Final = "tokens.json"
#: The layout of the file; another version is not read (and is replaced).
VERSION: Final = 1

Servers = dict[str, dict[str, str]]


class TokenFile:
    """
    The stored session tokens of one server's users, in a file that other
    servers' tokens share.

    @ivar path: the file.
    @ivar server: the server whose tokens this reads and writes, as
        C{host:port}.
    """

    log = Logger()

    def __init__(self, path: str, server: str) -> None:
        self.path = path
        self.server = server

    def newest(self) -> tuple[str, str] | None:
        """
        @return: the username and token of the user who most recently
            logged in to this server and stayed logged in, or L{None}.
        """
        tokens = self._read().get(self.server, {})
        if not tokens:
            return None
        username = list(tokens)[-1]
        return username, tokens[username]

    def token(self, username: str) -> str | None:
        """
        @return: the token stored for C{username} on this server, or
            L{None}.
        """
        return self._read().get(self.server, {}).get(username)

    def save(self, username: str, token: str) -> None:
        """
        Store C{token} for C{username}, in place of any older one, as the
        newest of this server.
        """
        servers = self._read()
        tokens = servers.setdefault(self.server, {})
        if list(tokens.items())[-1:] == [(username, token)]:
            return  # the same token again (a resume): nothing to write
        tokens.pop(username, None)
        tokens[username] = token
        self._write(servers)

    def forget(self, username: str, token: str | None = None) -> None:
        """
        Remove the token of C{username} on this server, if one is stored.

        @param token: remove it only if it is this one (another run of the
            client may have stored a newer one meanwhile).
        """
        servers = self._read()
        tokens = servers.get(self.server, {})
        if username not in tokens or token not in (None, tokens[username]):
            return
        del tokens[username]
        if not tokens:
            del servers[self.server]
        self._write(servers)

    def _read(self) -> Servers:
        """
        @return: every server's tokens; none when the file is missing, or
            unreadable (then the next change replaces it).
        """
        try:
            with open(self.path, encoding="utf-8") as f:
                data: Any = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.log.warn("Ignoring the token file {path}: {error}", path=self.path, error=e)
            return {}
        servers = data.get("servers") if isinstance(data, dict) else None
        if not isinstance(servers, dict) or data.get("version") != VERSION:
            self.log.warn("Ignoring the token file {path}: not version 1", path=self.path)
            return {}
        return {
            server: {u: t for u, t in tokens.items() if isinstance(t, str)}
            for server, tokens in servers.items()
            if isinstance(tokens, dict)
        }

    def _write(self, servers: Servers) -> None:
        """
        Replace the file with C{servers}; a failure is logged, not raised:
        the session goes on, its token kept in memory only.
        """
        folder = os.path.dirname(self.path) or "."
        temporary = f"{self.path}.{os.getpid()}.tmp"
        text = json.dumps({"version": VERSION, "servers": servers}, indent=1)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                if hasattr(os, "fchmod"):
                    # O_CREAT's mode applies to a new file only: a leftover
                    # temporary file gets it too.
                    os.fchmod(f.fileno(), 0o600)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            self.log.warn("Cannot write the token file {path}: {error}", path=self.path, error=e)
