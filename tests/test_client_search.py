"""
The client's side of full-text search (PROTOCOL.md section 11): how the
terms of a query are found and cut out of a message, what the session
sends, and the search panel of the main window as the user drives it:
shortcuts, scope, typing with a pause, results, paging, opening a result,
and the empty and error states.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QSignalSpy, QTest
from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from client import texts
from client.protocol import ChatError
from client.search import (
    MAX_QUERY,
    SEARCH_PAGE,
    SearchPage,
    find_terms,
    search_terms,
    snippet,
    valid_query,
)
from client.state import PRIVATE, ROOM, Message
from client.ui.delegates import highlighted
from client.ui.models import (
    ConversationRole,
    HighlightRole,
    KeyRole,
    SenderRole,
    TimeRole,
    UnreadRole,
    result_time,
)
from client.ui.widgets import SEARCH_DELAY, SearchPanel
from tests.qt_support import LZY, NCR, WH, Session, check_model, message
from tests.test_client_ui import AppTestCase, rows


class TermsTests(SynchronousTestCase):
    """
    Queries, terms, and where the terms are in a text, as the server
    matches them.
    """

    def test_valid_query(self) -> None:
        """
        A query is 1-200 code points, not whitespace only.
        """
        for query in ["", " ", "\t\n", "\u3000", "x" * (MAX_QUERY + 1)]:
            self.assertFalse(valid_query(query), repr(query))
        for query in ["a", " a ", "x" * MAX_QUERY, "你好"]:
            self.assertTrue(valid_query(query), repr(query))

    def test_terms(self) -> None:
        """
        A query is split at any whitespace (U+3000 too) into case-folded
        terms, each kept once, in the order typed.
        """
        self.assertEqual(
            search_terms("Hello  WORLD\thello\u3000Straße"), ("hello", "world", "strasse")
        )
        self.assertEqual(search_terms('100% "OR" -x'), ("100%", '"or"', "-x"))

    def test_case_folding(self) -> None:
        """
        Terms are found ignoring case by full case folding, in any script,
        and the spans are the text's own positions even where folding
        changes the length.
        """
        self.assertEqual(find_terms("hello, world", search_terms("HELLO")), [(0, 5)])
        self.assertEqual(find_terms("Die Straße", search_terms("STRASSE")), [(4, 10)])
        self.assertEqual(find_terms("DIE STRASSE", search_terms("straße")), [(4, 11)])
        self.assertEqual(find_terms("Straße straße", search_terms("ße")), [(4, 6), (11, 13)])
        self.assertEqual(find_terms("大家你好\uff01", search_terms("你好")), [(2, 4)])

    def test_every_occurrence_of_every_term(self) -> None:
        """
        Every occurrence of every term is found, overlapping and touching
        ones merged; pattern characters are plain text.
        """
        text = "a cat, a CATalogue and 100% of cats*"
        spans = find_terms(text, search_terms("cat 100% *"))
        self.assertEqual([text[s:e] for s, e in spans], ["cat", "CAT", "100%", "cat", "*"])
        self.assertEqual(find_terms("abcabc", search_terms("abc bca")), [(0, 6)])
        self.assertEqual(find_terms("nothing here", search_terms("zebra")), [])

    def test_short_snippet(self) -> None:
        """
        A short message is shown whole, on one line.
        """
        self.assertEqual(snippet("see you\n\n  tomorrow", search_terms("you")), "see you tomorrow")

    def test_long_snippet(self) -> None:
        """
        A long message is cut around its first match, at word boundaries,
        with an ellipsis on each side where something was left out.
        """
        text = (
            " ".join(f"word{i}" for i in range(60))
            + " NEEDLE "
            + " ".join(f"tail{i}" for i in range(60))
        )
        shown = snippet(text, search_terms("needle"), length=80, context=20)
        self.assertTrue(shown.startswith("…word"), shown)
        self.assertTrue(shown.endswith("…"), shown)
        self.assertIn("NEEDLE", shown)
        self.assertLessEqual(len(shown), 82)
        self.assertNotIn(" …", shown)
        start = snippet("NEEDLE " + "x " * 100, search_terms("needle"), length=40)
        self.assertTrue(start.startswith("NEEDLE"), start)

    def test_highlighted(self) -> None:
        """
        The rich text of a result marks each span and escapes the rest.
        """
        html = highlighted("<b>Hi</b> & hi", [(3, 5), (12, 14)])
        self.assertNotIn("<b>", html)
        self.assertIn("&lt;b&gt;", html)
        self.assertIn("&amp;", html)
        self.assertEqual(html.count("<span"), 2)
        self.assertIn(">Hi</span>", html)
        self.assertIn(">hi</span>", html)

    def test_result_time(self) -> None:
        """
        A result says the time for today, "Yesterday" and the time, the
        date and the time this year, and the date for other years.
        """
        today = date(2026, 11, 24)
        self.assertEqual(result_time(datetime(2026, 11, 24, 6, 5), today), "06:05")
        self.assertEqual(result_time(datetime(2026, 11, 23, 18, 0), today), "Yesterday 18:00")
        self.assertEqual(result_time(datetime(2026, 3, 2, 9, 30), today), "02 Mar, 09:30")
        self.assertEqual(result_time(datetime(2025, 3, 2, 9, 30), today), "02 Mar 2025")


class SessionSearchTests(SynchronousTestCase):
    """
    L{ChatClient.search}: the request it sends and what it makes of the
    reply.
    """

    def setUp(self) -> None:
        self.session = Session()
        self.session.log_in()
        self.server = self.session.server

    def test_everywhere(self) -> None:
        """
        A search of all conversations names no target and asks for a page.
        """
        d = self.session.client.search("hello world")
        request = self.server.take("search")
        self.assertEqual(
            {k: v for k, v in request.items() if k != "id"},
            {"type": "search", "query": "hello world", "limit": SEARCH_PAGE},
        )
        found = [message(9, LZY, ROOM, 1, "Hello world"), message(4, LZY, PRIVATE, 1, "hello")]
        self.server.reply(request, "search_results", messages=found, has_more=True)
        page = self.successResultOf(d)
        self.assertEqual([m.id for m in page.messages], [9, 4])
        self.assertIsInstance(page.messages[0], Message)
        self.assertTrue(page.has_more)
        # Matches are not timeline rows: the conversations hold nothing.
        self.assertFalse(self.session.state.conversation((ROOM, 1)).holds(9))

    def test_one_conversation_and_later_pages(self) -> None:
        """
        A search of one conversation names it; a later page says before
        which message id.
        """
        d = self.session.client.search("plan", (ROOM, 1), before=40)
        request = self.server.take("search")
        self.assertEqual(
            (request["target_type"], request["target_id"], request["before"]), (ROOM, 1, 40)
        )
        self.server.error(request, "not_in_room", "You are not in that room.")
        self.assertEqual(self.failureResultOf(d, ChatError).value.code, "not_in_room")

    def test_page_from_payload(self) -> None:
        """
        An empty reply is an empty page with nothing more.
        """
        self.assertEqual(SearchPage.from_payload({"type": "search_results"}), SearchPage((), False))


def results(count: int, first_id: int = 100, text: str = "the plan") -> list[dict[str, Any]]:
    """
    @return: C{count} matches in room1 from lzy, newest first, ids going
        down from C{first_id}.
    """
    return [message(first_id - i, LZY, ROOM, 1, f"{text} {i}") for i in range(count)]


class SearchPanelTests(AppTestCase):
    """
    The search panel of the main window, as the user sees and drives it.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log_in()
        self.main.show()
        self.main.activateWindow()
        self.app.processEvents()
        self.panel: SearchPanel = self.main.search_panel
        self.model = self.main.search_model
        check_model(self, self.model)

    def press(self, key: Any, modifier: Any = Qt.KeyboardModifier.NoModifier) -> None:
        """
        Press C{key} where the keyboard focus is in the main window.
        """
        QTest.keyClick(self.main.focusWidget() or self.main, key, modifier)
        self.app.processEvents()

    def searches(self) -> list[dict[str, Any]]:
        """
        @return: the search requests the server got since last asked (the
            other requests it got are dropped).
        """
        return [r for r in self.server.sent() if r["type"] == "search"]

    def search(self, text: str, here: bool = False) -> dict[str, Any]:
        """
        Open the search, type C{text} and wait for the pause.

        @return: the search request sent.
        """
        self.panel.field.clear()
        self.main.open_search(here)
        QTest.keyClicks(self.panel.field, text)
        self.session.clock.advance(SEARCH_DELAY)
        [request] = self.searches()
        return request

    def found(self, request: dict[str, Any], found: list[Any], has_more: bool = False) -> None:
        """
        Answer the search C{request} with the messages C{found}.
        """
        self.server.reply(request, "search_results", messages=found, has_more=has_more)
        self.app.processEvents()

    # Opening and closing.

    def test_ctrl_k_opens_the_search(self) -> None:
        """
        Ctrl+K opens the search of every conversation with the cursor in
        its field; Esc closes it.
        """
        self.assertTrue(self.panel.isHidden())
        self.press(Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        self.assertFalse(self.panel.isHidden())
        self.assertIs(self.main.focusWidget(), self.panel.field)
        self.assertTrue(self.panel.all_button.isChecked())
        self.assertFalse(self.panel.here_button.isEnabled())
        self.assertEqual(self.panel.status.text(), SearchPanel.PROMPT)
        self.press(Qt.Key.Key_Escape)
        self.assertTrue(self.panel.isHidden())

    def test_ctrl_f_searches_the_conversation_shown(self) -> None:
        """
        With a conversation shown, Ctrl+F opens the search of that one
        alone, in place of the room's members; they come back on Esc.
        """
        self.open((ROOM, 1), [])
        self.assertTrue(self.main.member_panel.isVisible())
        self.press(Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        self.assertFalse(self.panel.isHidden())
        self.assertFalse(self.main.member_panel.isVisible())
        self.assertIs(self.main.focusWidget(), self.panel.field)
        self.assertTrue(self.panel.here_button.isChecked())
        self.assertEqual(self.panel.here_button.text(), "In room1")
        QTest.keyClicks(self.panel.field, "plan")
        self.session.clock.advance(SEARCH_DELAY)
        [request] = self.searches()
        self.assertEqual((request["target_type"], request["target_id"]), (ROOM, 1))
        self.press(Qt.Key.Key_Escape)
        self.assertTrue(self.panel.isHidden())
        self.assertTrue(self.main.member_panel.isVisible())
        self.assertIs(self.main.focusWidget(), self.main.compose)

    def test_ctrl_f_with_no_conversation_shown(self) -> None:
        """
        With no conversation shown, Ctrl+F searches all of them.
        """
        self.press(Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        self.assertFalse(self.panel.isHidden())
        self.assertTrue(self.panel.all_button.isChecked())
        self.assertEqual(self.panel.here_button.text(), "This conversation")
        self.assertNotIn("target_type", self.search("plan", here=True))

    def test_ctrl_f_from_the_input_box(self) -> None:
        """
        The shortcuts work while writing a message, too.
        """
        self.open((PRIVATE, 2), [])
        self.main.compose.setFocus()
        self.press(Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        self.assertIs(self.main.focusWidget(), self.panel.field)
        self.press(Qt.Key.Key_Escape)
        self.main.compose.setFocus()
        self.press(Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
        self.assertIs(self.main.focusWidget(), self.panel.field)
        self.assertTrue(self.panel.all_button.isChecked())

    def test_header_button_opens_the_search(self) -> None:
        """
        The header's search button opens the search too.
        """
        QTest.mouseClick(self.main.search_button, Qt.MouseButton.LeftButton)
        self.assertFalse(self.panel.isHidden())
        QTest.mouseClick(self.panel.close_button, Qt.MouseButton.LeftButton)
        self.assertTrue(self.panel.isHidden())

    # The scope.

    def test_scope_choice(self) -> None:
        """
        Switching between all conversations and the one shown searches
        again in the new scope.
        """
        self.open((ROOM, 1), [])
        request = self.search("plan")
        self.assertNotIn("target_type", request)
        QTest.mouseClick(self.panel.here_button, Qt.MouseButton.LeftButton)
        [request] = self.searches()
        self.assertEqual((request["query"], request["target_id"]), ("plan", 1))
        QTest.mouseClick(self.panel.all_button, Qt.MouseButton.LeftButton)
        [request] = self.searches()
        self.assertNotIn("target_type", request)

    def test_scope_follows_the_conversation_shown(self) -> None:
        """
        Searching "this conversation", picking another one searches that
        one; with none shown, the search is of all of them.
        """
        self.open((ROOM, 1), [])
        self.search("plan", here=True)
        self.main.select((PRIVATE, 2))
        request = self.server.take("search")
        self.assertEqual((request["target_type"], request["target_id"]), (PRIVATE, 2))
        self.assertEqual(self.panel.here_button.text(), "In lzy")
        self.main.select(None)
        request = self.server.take("search")
        self.assertNotIn("target_type", request)
        self.assertFalse(self.panel.here_button.isEnabled())

    # Typing.

    def test_search_waits_for_a_pause(self) -> None:
        """
        Typing searches once no key was struck for a moment; each
        keystroke starts the wait again.
        """
        self.main.open_search()
        QTest.keyClicks(self.panel.field, "pl")
        self.session.clock.advance(SEARCH_DELAY * 0.7)
        QTest.keyClicks(self.panel.field, "an")
        self.session.clock.advance(SEARCH_DELAY * 0.7)
        self.assertEqual(self.searches(), [])
        self.session.clock.advance(SEARCH_DELAY * 0.3)
        [request] = self.searches()
        self.assertEqual(request["query"], "plan")
        self.assertEqual(self.panel.status.text(), "Searching…")
        self.session.clock.advance(10)
        self.assertEqual(self.searches(), [])

    def test_enter_searches_at_once(self) -> None:
        """
        Enter searches without waiting, once.
        """
        self.main.open_search()
        QTest.keyClicks(self.panel.field, "plan")
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        [request] = self.searches()
        self.assertEqual(request["query"], "plan")
        self.session.clock.advance(SEARCH_DELAY)
        self.assertEqual(self.searches(), [])

    def test_blank_query_is_not_sent(self) -> None:
        """
        A query of spaces is not sent; emptying the field forgets the
        results.
        """
        self.main.open_search()
        QTest.keyClicks(self.panel.field, "   ")
        self.session.clock.advance(SEARCH_DELAY)
        self.assertEqual(self.searches(), [])
        self.assertEqual(self.panel.status.text(), SearchPanel.PROMPT)
        request = self.search("plan")
        self.found(request, results(2))
        self.assertEqual(self.model.rowCount(), 2)
        self.panel.field.selectAll()
        QTest.keyClick(self.panel.field, Qt.Key.Key_Backspace)
        self.session.clock.advance(SEARCH_DELAY)
        self.assertEqual(self.searches(), [])
        self.assertEqual(self.model.rowCount(), 0)
        self.assertEqual(self.panel.status.text(), SearchPanel.PROMPT)

    def test_field_takes_at_most_200(self) -> None:
        """
        The field takes no more than the server does.
        """
        self.assertEqual(self.panel.field.maxLength(), MAX_QUERY)

    # Results.

    def test_results_show_conversation_sender_time_and_terms(self) -> None:
        """
        Each result names its conversation (the room, or the friend), its
        sender (us as "You"), its time in local time, and where the terms
        are in its text.
        """
        request = self.search("PLAN straße")
        found = [
            message(9, LZY, ROOM, 1, "The plan: Straße 5, then the PLAN B"),
            message(4, NCR, PRIVATE, 2, "plan at the strasse?", time="2026-11-20T10:00:00.000Z"),
            message(3, WH, PRIVATE, 1, "my strasse plan"),
        ]
        self.found(request, found)
        self.assertEqual(rows(self.model, ConversationRole), ["room1", "lzy", "wh"])
        self.assertEqual(rows(self.model, SenderRole), ["lzy", "You", "wh"])
        self.assertEqual(rows(self.model, KeyRole), [(ROOM, 1), (PRIVATE, 2), (PRIVATE, 3)])
        self.assertEqual(
            rows(self.model, TimeRole),
            [result_time(Message.from_payload(m).local_time()) for m in found],
        )
        text = self.model.index(0).data()
        marked = [text[s:e] for s, e in self.model.index(0).data(HighlightRole)]
        self.assertEqual(marked, ["plan", "Straße", "PLAN"])
        self.assertEqual(self.panel.status.text(), "3 messages found, newest first")
        # Painting a row draws it without complaint.
        self.assertFalse(self.panel.results.grab().isNull())

    def test_long_message_is_cut_around_the_match(self) -> None:
        """
        A long message shows the part around its first match.
        """
        request = self.search("needle")
        text = "hay " * 200 + "a NEEDLE in it " + "hay " * 200
        self.found(request, [message(9, LZY, ROOM, 1, text)])
        shown = self.model.index(0).data()
        self.assertTrue(shown.startswith("…") and shown.endswith("…"), shown)
        [(start, end)] = self.model.index(0).data(HighlightRole)
        self.assertEqual(shown[start:end], "NEEDLE")

    def test_nothing_found(self) -> None:
        """
        A search that finds nothing says so.
        """
        self.found(self.search("zebra"), [])
        self.assertEqual(self.model.rowCount(), 0)
        self.assertEqual(self.panel.status.text(), "No messages found")
        self.assertFalse(self.panel.status.property("error"))

    def test_refusal_is_a_sentence(self) -> None:
        """
        A refused search says why in a sentence, marked as an error.
        """
        self.server.error(self.search("plan"), "invalid_field", "query: too long")
        self.assertEqual(self.panel.status.text(), texts.SEARCH_ERRORS["invalid_field"])
        self.assertTrue(self.panel.status.property("error"))
        self.open((ROOM, 1), [])
        self.server.error(self.search("plan", here=True), "not_in_room", "Not in room.")
        self.assertEqual(self.panel.status.text(), texts.SEARCH_ERRORS["not_in_room"])
        self.server.error(self.search("plan again"), "internal_error", "The server failed.")
        self.assertEqual(self.panel.status.text(), "The server failed.")
        # Enter tries the same search again.
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        [again] = self.searches()
        self.assertEqual(again["query"], "plan again")
        self.found(again, [])
        self.assertEqual(self.panel.status.text(), "No messages found")
        self.assertFalse(self.panel.status.property("error"))

    def test_offline_is_a_sentence(self) -> None:
        """
        A search while offline, or cut off by a lost connection, says that
        it needs the connection.
        """
        request = self.search("plan")
        self.server.drop()
        self.assertEqual(self.panel.status.text(), texts.SEARCH_OFFLINE)
        QTest.keyClicks(self.panel.field, "s")
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.panel.status.text(), texts.SEARCH_OFFLINE)
        self.assertTrue(self.panel.status.property("error"))
        self.assertEqual(request["query"], "plan")

    def test_a_bug_is_logged_not_shown(self) -> None:
        """
        A search failing for no reason the client knows is logged, and the
        user reads a plain sentence.
        """
        self.patch(self.session.client, "search", lambda *args: fail(KeyError("a bug")))
        self.main.open_search()
        QTest.keyClicks(self.panel.field, "plan")
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.panel.status.text(), texts.SEARCH_FAILED)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_reply_to_an_older_query_is_dropped(self) -> None:
        """
        The reply to a query replaced while it was on its way is not shown,
        before nor after the newer one's.
        """
        first = self.search("pla")
        QTest.keyClicks(self.panel.field, "n")
        self.session.clock.advance(SEARCH_DELAY)
        [second] = self.searches()
        self.found(first, results(3, text="pla"))
        self.assertEqual(self.model.rowCount(), 0)
        self.assertEqual(self.panel.status.text(), "Searching…")
        self.found(second, results(1))
        self.assertEqual(rows(self.model), ["the plan 0"])
        self.server.error(first, "rate_limited")
        self.assertEqual(rows(self.model), ["the plan 0"])
        self.assertEqual(self.panel.status.text(), "1 message found, newest first")

    def test_reply_to_an_older_page_is_dropped(self) -> None:
        """
        A next page still on its way when the user searches for something
        else is not added to the new results.
        """
        request = self.search("plan")
        self.found(request, results(SEARCH_PAGE), has_more=True)
        self.panel.load_more()
        [more] = self.searches()
        QTest.keyClicks(self.panel.field, "s")
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        [newer] = self.searches()
        self.found(more, results(5, first_id=50))
        self.assertEqual(self.model.rowCount(), 0)
        self.found(newer, results(1, text="plans"))
        self.assertEqual(rows(self.model), ["plans 0"])

    def test_scrolling_to_the_bottom_loads_more(self) -> None:
        """
        Scrolled to the bottom of a full page, the next page is asked for,
        before the oldest message shown, in the same scope, once; at the
        end, nothing more is asked.
        """
        self.open((ROOM, 1), [])
        request = self.search("plan", here=True)
        self.found(request, results(SEARCH_PAGE), has_more=True)
        self.assertEqual(self.searches(), [])
        self.assertEqual(self.panel.status.text(), f"{SEARCH_PAGE}+ messages found, newest first")
        bar = self.panel.results.verticalScrollBar()
        self.assertGreater(bar.maximum(), 0)
        bar.setValue(bar.maximum())
        [more] = self.searches()
        self.assertEqual(
            (more["query"], more["target_id"], more["before"]), ("plan", 1, 100 - SEARCH_PAGE + 1)
        )
        self.assertEqual(self.panel.status.text(), "Loading more…")
        bar.setValue(0)
        bar.setValue(bar.maximum())
        self.assertEqual(self.searches(), [])
        self.found(more, results(3, first_id=100 - SEARCH_PAGE))
        self.assertEqual(self.model.rowCount(), SEARCH_PAGE + 3)
        bar.setValue(bar.maximum())
        self.assertEqual(self.searches(), [])

    def test_short_page_with_more_asks_for_the_next(self) -> None:
        """
        A page that does not fill the list, with more to come, asks for the
        next one at once: there is nothing to scroll.
        """
        self.found(self.search("plan"), results(2), has_more=True)
        [more] = self.searches()
        self.assertEqual(more["before"], 99)

    # Opening a result.

    def click_result(self, row: int) -> None:
        view = self.panel.results
        self.app.processEvents()
        where = view.visualRect(self.model.index(row)).center()
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=where)

    def test_enter_opens_a_held_message(self) -> None:
        """
        Down then Enter on a result shows its conversation scrolled to the
        message, marked for a moment; the results stay, the focus on them.
        """
        self.open(
            (ROOM, 1),
            [message(i, LZY, ROOM, 1, f"m{i}") for i in range(5, 9)],
        )
        self.main.select((PRIVATE, 2))
        self.server.reply(
            self.server.take("history"),
            "history",
            target_type=PRIVATE,
            target_id=2,
            messages=[],
            has_more=False,
        )
        request = self.search("m6")
        self.found(request, [message(6, LZY, ROOM, 1, "m6")])
        QTest.keyClick(self.panel.field, Qt.Key.Key_Down)
        self.assertIs(self.main.focusWidget(), self.panel.results)
        QTest.keyClick(self.panel.results, Qt.Key.Key_Return)
        self.assertEqual(self.main.current, (ROOM, 1))
        self.assertEqual(self.main.history_view.currentIndex().row(), 1)
        self.assertFalse(self.panel.isHidden())
        self.assertIs(self.main.focusWidget(), self.panel.results)
        self.session.clock.advance(2)
        self.assertEqual(self.main.history_view.selectedIndexes(), [])

    def test_enter_in_the_field_opens_the_first(self) -> None:
        """
        Enter in the field on results already shown opens the first one.
        """
        self.open((ROOM, 1), [message(7, LZY, ROOM, 1, "the plan")])
        self.main.select(None)
        self.found(self.search("plan"), [message(7, LZY, ROOM, 1, "the plan")])
        QTest.keyClick(self.panel.field, Qt.Key.Key_Return)
        self.assertEqual(self.main.current, (ROOM, 1))
        self.assertEqual(self.main.history_view.currentIndex().row(), 0)

    def reply_history(self, request: dict[str, Any], key: Any, ids: Any, has_more: bool) -> None:
        """
        Answer the history C{request} of C{key} with lzy's messages C{ids}.
        """
        target = 1 if key[0] == PRIVATE else key[1]
        self.server.reply(
            request,
            "history",
            target_type=key[0],
            target_id=key[1],
            messages=[message(i, LZY, key[0], target, f"m{i}") for i in ids],
            has_more=has_more,
        )
        self.app.processEvents()

    def histories(self) -> list[dict[str, Any]]:
        """
        @return: the history requests the server got since last asked (the
            other requests it got are dropped).
        """
        return [r for r in self.server.sent() if r["type"] == "history"]

    def test_click_opens_an_older_message(self) -> None:
        """
        A click on a result far back in a conversation not opened yet
        loads its newest page, then the window around the message (not
        page after page back to it), and marks it; "Jump to latest" shows.
        """
        spy = QSignalSpy(self.panel.result_opened)
        self.found(self.search("plan"), [message(12, LZY, PRIVATE, 1, "the plan")])
        self.click_result(0)
        self.assertEqual(len(spy), 1)
        self.assertEqual(self.main.current, (PRIVATE, 2))
        (latest,) = self.histories()
        self.assertEqual((latest.get("before"), latest.get("after")), (None, None))
        self.reply_history(latest, (PRIVATE, 2), range(1000, 1050), True)
        before, after = self.histories()
        self.assertEqual((before["before"], before["limit"]), (13, 25))
        self.assertEqual((after["after"], after["limit"]), (12, 25))
        self.reply_history(before, (PRIVATE, 2), range(1, 13), False)
        self.reply_history(after, (PRIVATE, 2), range(13, 38), True)
        self.assertEqual(self.histories(), [])
        view = self.main.history_view
        self.assertEqual(view.currentIndex().data(), "m12")
        self.assertEqual(view.currentIndex().row(), 11)
        self.assertEqual(view.model().rowCount(), 37)
        self.assertTrue(view.latest_button.isVisible())
        self.session.clock.advance(2)
        self.assertEqual(view.selectedIndexes(), [])

    def open_far(self) -> Any:
        """
        Open room1 at its newest messages (1000-1049), then a result far
        back in it (500), answering its window (476-525).

        @return: the timeline view.
        """
        self.open((ROOM, 1), [message(i, LZY, ROOM, 1, f"m{i}") for i in range(1000, 1050)], True)
        check_model(self, self.main.history_view.model())
        self.server.sent()
        self.found(self.search("plan"), [message(500, LZY, ROOM, 1, "the plan")])
        self.panel.open_result(0)
        before, after = self.histories()
        self.assertEqual((before["before"], before["limit"]), (501, 25))
        self.assertEqual((after["after"], after["limit"]), (500, 25))
        self.reply_history(before, (ROOM, 1), range(476, 501), True)
        self.reply_history(after, (ROOM, 1), range(501, 526), True)
        view = self.main.history_view
        self.assertEqual(view.currentIndex().data(), "m500")
        self.assertEqual(self.histories(), [])
        return view

    def test_far_result_in_an_opened_conversation(self) -> None:
        """
        In a conversation open at its newest messages, a result far back
        replaces them by the window around it, marked; new messages pushed
        meanwhile are not shown but counted unread, and notify when the
        conversation is not in view.
        """
        view = self.open_far()
        model = view.model()
        self.assertEqual(rows(model)[0], "m476")
        self.assertEqual(rows(model)[-1], "m525")
        self.assertTrue(view.latest_button.isVisible())
        self.server.push("on_new_message", message=message(2000, LZY, ROOM, 1, "news"))
        self.assertEqual(model.rowCount(), 50)
        self.assertEqual(rows(self.main.rooms_model, UnreadRole), [1])
        self.assertEqual([r for r in self.server.sent() if r["type"] == "mark_read"], [])
        self.main.select((PRIVATE, 2))
        self.server.sent()
        self.server.push("on_new_message", message=message(2001, LZY, ROOM, 1, "more news"))
        self.assertEqual(self.chat.notifier.last, ("lzy in room1", "more news", (ROOM, 1)))
        # Coming back shows the same window, asking for nothing.
        self.main.select((ROOM, 1))
        self.assertEqual(self.histories(), [])
        self.assertEqual(rows(view.model())[0], "m476")
        self.assertTrue(view.latest_button.isVisible())

    def test_jump_to_latest(self) -> None:
        """
        "Jump to latest" loads the newest page instead of the window and
        shows it at the bottom, its unread messages seen.
        """
        view = self.open_far()
        self.server.push("on_new_message", message=message(2000, LZY, ROOM, 1, "news"))
        QTest.mouseClick(view.latest_button, Qt.MouseButton.LeftButton)
        (newest,) = self.histories()
        self.assertEqual((newest.get("before"), newest.get("after")), (None, None))
        self.reply_history(newest, (ROOM, 1), range(1951, 2001), True)
        self.assertEqual(rows(view.model())[-1], "m2000")
        self.assertFalse(view.latest_button.isVisible())
        bar = view.verticalScrollBar()
        self.assertEqual(bar.value(), bar.maximum())
        self.assertEqual(rows(self.main.rooms_model, UnreadRole), [0])
        self.assertEqual(self.server.take("mark_read")["message_id"], 2000)
        # Attached again: pushed messages show as they come.
        self.server.push("on_new_message", message=message(2001, LZY, ROOM, 1, "now"))
        self.assertEqual(rows(view.model())[-1], "now")

    def test_scrolling_down_loads_newer_pages(self) -> None:
        """
        Scrolled to the bottom of the window, the page after it is asked
        for and shows below without moving the view; the last one attaches
        the conversation again.
        """
        view = self.open_far()
        bar = view.verticalScrollBar()
        bar.setValue(bar.maximum())
        (page,) = self.histories()
        self.assertEqual((page["after"], page["limit"]), (525, 50))
        bar.setValue(bar.maximum() - 1)
        bar.setValue(bar.maximum())
        self.assertEqual(self.histories(), [])
        at = bar.value()
        self.reply_history(page, (ROOM, 1), range(526, 576), True)
        self.assertEqual(bar.value(), at)
        self.assertLess(bar.value(), bar.maximum())
        self.assertEqual(self.histories(), [])
        self.assertTrue(view.latest_button.isVisible())
        bar.setValue(bar.maximum())
        (page,) = self.histories()
        self.assertEqual(page["after"], 575)
        self.reply_history(page, (ROOM, 1), range(576, 580), False)
        self.assertFalse(view.latest_button.isVisible())
        self.assertEqual(rows(view.model())[-1], "m579")
        bar.setValue(bar.maximum() - 1)
        bar.setValue(bar.maximum())
        self.assertEqual(self.histories(), [])

    def test_sending_from_a_window_goes_back_to_now(self) -> None:
        """
        Sending in a conversation showing a window far back loads its
        newest page first; the message shows after it, at the bottom.
        """
        view = self.open_far()
        self.main.compose.setPlainText("back to now")
        QTest.keyClick(self.main.compose, Qt.Key.Key_Return)
        newest, send = [r for r in self.server.sent() if r["type"] != "typing"]
        self.assertEqual(
            (newest["type"], newest.get("before"), newest.get("after")), ("history", None, None)
        )
        self.assertEqual(send["type"], "send_message")
        self.reply_history(newest, (ROOM, 1), range(1001, 1051), True)
        self.server.reply(
            send,
            "on_new_message",
            message=message(1051, NCR, ROOM, 1, "back to now", send["client_msg_id"]),
        )
        self.app.processEvents()
        self.assertEqual(rows(view.model())[-1], "back to now")
        self.assertFalse(view.latest_button.isVisible())
        bar = view.verticalScrollBar()
        self.assertEqual(bar.value(), bar.maximum())

    def test_far_result_no_longer_there(self) -> None:
        """
        A result far back that the server no longer shows says so, and
        what was shown stays.
        """
        self.open((ROOM, 1), [message(i, LZY, ROOM, 1, f"m{i}") for i in range(1000, 1050)], True)
        self.server.sent()
        self.found(self.search("plan"), [message(500, LZY, ROOM, 1, "the plan")])
        self.panel.open_result(0)
        before, after = self.histories()
        self.reply_history(before, (ROOM, 1), range(470, 500), True)
        self.reply_history(after, (ROOM, 1), range(501, 526), True)
        self.assertEqual(self.main.notice_bar.text(), texts.MESSAGE_GONE)
        self.assertEqual(rows(self.main.history_view.model())[0], "m1000")
        self.assertFalse(self.main.history_view.latest_button.isVisible())

    def test_open_a_message_pages_back_in_an_opened_conversation(self) -> None:
        """
        In a conversation already open, a result within a page of the
        oldest message held loads the pages before it until it is there
        (here the server's pages are short), then marks it.
        """
        self.open((ROOM, 1), [message(i, LZY, ROOM, 1, f"m{i}") for i in range(40, 45)], True)
        self.found(self.search("plan"), [message(12, LZY, ROOM, 1, "the plan")])
        self.panel.open_result(0)
        for ids in (range(30, 40), range(10, 30)):
            request = self.server.take("history")
            self.assertEqual(request["before"], ids.stop)
            self.server.reply(
                request,
                "history",
                target_type=ROOM,
                target_id=1,
                messages=[message(i, LZY, ROOM, 1, f"m{i}") for i in ids],
                has_more=True,
            )
        self.app.processEvents()
        self.assertEqual(self.main.history_view.currentIndex().data(), "m12")

    def test_result_of_a_conversation_gone(self) -> None:
        """
        A result of a friend removed since says so, and shows nothing else.
        """
        self.found(self.search("plan"), [message(12, WH, PRIVATE, 1, "the plan")])
        self.server.push("friend_removed", user_id=3)
        self.panel.open_result(0)
        self.assertIsNone(self.main.current)
        self.assertEqual(
            self.main.notice_bar.text(), "That conversation is no longer in your lists."
        )

    def test_up_goes_back_to_the_field(self) -> None:
        """
        Up on the first result puts the cursor back in the field.
        """
        self.found(self.search("plan"), results(2))
        QTest.keyClick(self.panel.field, Qt.Key.Key_Down)
        QTest.keyClick(self.panel.results, Qt.Key.Key_Up)
        self.assertIs(self.main.focusWidget(), self.panel.field)

    def test_reopening_keeps_the_results(self) -> None:
        """
        Closing and opening the search again keeps what was found, without
        asking again.
        """
        self.found(self.search("plan"), results(2))
        self.main.close_search()
        self.main.open_search()
        self.assertEqual(self.searches(), [])
        self.assertEqual(self.model.rowCount(), 2)
        self.assertEqual(self.panel.field.selectedText(), "plan")

    def test_logout_forgets_the_search(self) -> None:
        """
        Logging out closes the search and forgets it.
        """
        self.found(self.search("plan"), results(2))
        self.main.logout_button.click()
        self.server.reply(self.server.take("logout"), "logout_successful")
        self.assertTrue(self.panel.isHidden())
        self.assertEqual(self.model.rowCount(), 0)
        self.assertEqual(self.panel.field.text(), "")
