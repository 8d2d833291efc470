"""
Tests for L{chatd.mentions}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chatd.mentions import mentioned_names


class MentionedNamesTests(SynchronousTestCase):
    """
    Which C{@name}s a text mentions.
    """

    def test_start_and_after_other_characters(self) -> None:
        """
        A mention starts the text or follows a character that is not an
        ASCII letter, digit or C{_}: space, punctuation, another C{@}, or
        any non-ASCII character.
        """
        self.assertEqual(
            mentioned_names("@ncr hi (@lzy), a@@bob 你好@Carol"), ["ncr", "lzy", "bob", "carol"]
        )

    def test_not_after_a_name_character(self) -> None:
        """
        An C{@} after a letter, digit or C{_} (as in an e-mail address)
        mentions nobody.
        """
        self.assertEqual(mentioned_names("mail ncr@example.org or x_@lzy or 1@bob"), [])

    def test_whole_name_only(self) -> None:
        """
        The name is the whole run of name characters: longer than 32 it
        names nobody; punctuation and non-ASCII letters end it.
        """
        self.assertEqual(mentioned_names("@" + "a" * 33), [])
        self.assertEqual(mentioned_names("@" + "a" * 32), ["a" * 32])
        self.assertEqual(mentioned_names("@ncr. @lzy's @bobé"), ["ncr", "lzy", "bob"])

    def test_case_and_repeats(self) -> None:
        """
        Names are lower-cased and listed once each, in order of first
        appearance.
        """
        self.assertEqual(mentioned_names("@LZY @ncr @lzy @Ncr"), ["lzy", "ncr"])

    def test_nothing(self) -> None:
        """
        A text without a mention, or with a bare C{@}, mentions nobody.
        """
        self.assertEqual(mentioned_names("hello @ everyone @"), [])
