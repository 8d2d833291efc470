"""
C{twistd}, with chatd's password hasher swapped for the test suite's cheap
one (L{chatd.passwords.cheap_hasher}): the server of shape (d) only.

Shape (d) logs 2000 users in to measure the memory an idle connection
costs.  With chatd's real argon2id parameters that is 2000 hashes of about
0.15 s each, one at a time: five minutes of the benchmark spent on
something (d) does not measure.  Everything else is chatd as installed; its
accounts must have been hashed with the cheap parameters too, or each
login would rehash.

Run as a file, not as C{-m bench.cheap_chatd}, so that C{chatd} is the
installed copy, like C{twistd}'s:

    python bench/cheap_chatd.py -n --pidfile= chatd --port ... --db ...
"""

from __future__ import annotations

from argon2 import PasswordHasher
from twisted.scripts.twistd import run

import chatd.passwords


def main() -> None:
    """
    Run twistd with the cheap hasher as the default of
    L{chatd.passwords.Passwords}.
    """
    # Built before the swap: cheap_hasher() itself looks PasswordHasher up.
    hasher = chatd.passwords.cheap_hasher()

    def cheap() -> PasswordHasher:
        return hasher

    # Passwords() looks the name up when it is built, at service start.
    setattr(chatd.passwords, "PasswordHasher", cheap)  # noqa: B010
    run()


if __name__ == "__main__":
    main()
