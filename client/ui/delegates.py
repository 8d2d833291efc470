"""
How rows are drawn: contacts with an avatar, an online marker and an unread
badge; messages as bubbles grouped by sender, with day separators and
system messages set apart; search results with the terms found marked.
Delegates only paint what the models hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import TYPE_CHECKING, Final

from PyQt5.QtCore import QModelIndex, QPointF, QRectF, QSize, QSizeF, Qt
from PyQt5.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QTextDocument,
    QTextOption,
)
from PyQt5.QtWidgets import QAbstractItemView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from client import texts
from client.search import Span
from client.state import PRIVATE, File, Message, PendingFile, PendingMessage, Quote, Reaction
from client.ui import style
from client.ui.models import (
    FAILED,
    PENDING,
    ConversationRole,
    DateRole,
    DetailRole,
    EntryRole,
    ErrorRole,
    HighlightRole,
    IdRole,
    IsMeRole,
    JoinedRole,
    KeyRole,
    KindRole,
    MentionsMeRole,
    MentionsRole,
    MomentRole,
    NameRole,
    OnlineRole,
    OwnRole,
    RoleRole,
    SectionRole,
    SenderIdRole,
    SenderRole,
    StatusRole,
    TimeRole,
    UnreadRole,
)

if TYPE_CHECKING:
    from client.ui.files import FileStore


def _font(base: QFont, points: float | None = None, bold: bool = False) -> QFont:
    font = QFont(base)
    if points is not None:
        font.setPointSizeF(points)
    font.setBold(bold)
    return font


def draw_avatar(
    painter: QPainter,
    rect: QRectF,
    name: str,
    identifier: int,
    round_: bool = True,
    online: bool | None = None,
    ring: QColor | None = None,
) -> None:
    """
    Draw a coloured avatar with C{name}'s initial, and an online marker at
    its lower right when C{online} is not L{None}.
    """
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(style.colour_for(identifier))
    if round_:
        painter.drawEllipse(rect)
    else:
        painter.drawRoundedRect(rect, rect.width() * 0.28, rect.width() * 0.28)
    painter.setPen(QColor("#FFFFFF"))
    painter.setFont(_font(painter.font(), rect.height() * 0.38, bold=True))
    initial = name[:1].upper() if name else "?"
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "#" if not round_ else initial)
    if online is not None:
        d = max(9.0, rect.width() * 0.32)
        dot = QRectF(rect.right() - d + 1, rect.bottom() - d + 1, d, d)
        painter.setPen(QPen(ring or QColor("#FFFFFF"), 2))
        painter.setBrush(QColor(style.ONLINE if online else style.OFFLINE))
        painter.drawEllipse(dot)
    painter.restore()


class ContactDelegate(QStyledItemDelegate):
    """
    A friend or a room: avatar, C{name(id)}, a detail line, an online
    marker (friends) and an unread badge.
    """

    HEIGHT: Final = 54

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(option.rect.width(), self.HEIGHT)

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        assert painter is not None
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(8, 2, -8, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        background = QColor(style.SIDEBAR)
        if selected or hovered:
            background = QColor(style.SELECTED if selected else style.HOVER)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(background)
            painter.drawRoundedRect(rect, 8, 8)

        key = index.data(KeyRole)
        identifier = int(index.data(IdRole))
        name = str(index.data(NameRole))
        is_friend = key[0] == PRIVATE
        avatar = QRectF(rect.left() + 8, rect.center().y() - 17, 34, 34)
        draw_avatar(
            painter,
            avatar,
            name,
            identifier,
            round_=is_friend,
            online=bool(index.data(OnlineRole)) if is_friend else None,
            ring=background,
        )

        unread = int(index.data(UnreadRole) or 0)
        right = rect.right() - 10
        if unread:
            badge_font = _font(option.font, 8, bold=True)
            text = "99+" if unread > 99 else str(unread)
            width = max(20, QFontMetrics(badge_font).horizontalAdvance(text) + 12)
            badge = QRectF(right - width, rect.center().y() - 10, width, 20)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(style.ACCENT))
            painter.drawRoundedRect(badge, 10, 10)
            painter.setPen(QColor("#FFFFFF"))
            painter.setFont(badge_font)
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
            right = badge.left() - 8
        if index.data(MentionsRole):
            # A separate "@" badge: someone called us here.
            badge = QRectF(right - 20, rect.center().y() - 10, 20, 20)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(style.WARNING))
            painter.drawEllipse(badge)
            painter.setPen(QColor("#FFFFFF"))
            painter.setFont(_font(option.font, 8.5, bold=True))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "@")
            right = badge.left() - 8

        left = avatar.right() + 10
        name_font = _font(option.font, bold=unread > 0 or selected)
        if not unread and not selected:
            name_font.setWeight(QFont.DemiBold)
        metrics = QFontMetrics(name_font)
        top = rect.top() + 8
        line = QRectF(left, top, right - left, metrics.height())
        painter.setFont(name_font)
        painter.setPen(QColor(style.TEXT))
        shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(line.width() * 0.8))
        painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
        painter.setFont(_font(option.font))
        painter.setPen(QColor(style.MUTED))
        id_left = left + metrics.horizontalAdvance(shown)
        painter.drawText(
            QRectF(id_left, top, right - id_left, metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            f"({identifier})",
        )

        detail_font = _font(option.font, 8.5)
        painter.setFont(detail_font)
        detail = str(index.data(DetailRole) or "")
        if is_friend and index.data(OnlineRole):
            painter.setPen(QColor(style.ACCENT_DARK))
        detail_metrics = QFontMetrics(detail_font)
        painter.drawText(
            QRectF(left, line.bottom() + 2, right - left, detail_metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            detail_metrics.elidedText(detail, Qt.TextElideMode.ElideRight, int(right - left)),
        )
        painter.restore()


#: The badge a member of each role carries beside their name, and its
#: colours (text, background); plain members carry none.
ROLE_BADGES: Final = {
    "owner": ("owner", "#9A6700", "#FFF1CC"),
    "moderator": ("mod", "#2F5FB3", "#E3ECFB"),
}


def role_badge(role: str) -> str | None:
    """
    @return: the text of the badge a member with C{role} carries, or
        L{None} for a plain member.
    """
    badge = ROLE_BADGES.get(role)
    return badge[0] if badge is not None else None


class MemberDelegate(QStyledItemDelegate):
    """
    A room member: small avatar with an online marker, C{name(id)}, a badge
    for the owner and the moderators, and "you" for ourselves; above the
    first member of each group, the group's heading.
    """

    HEIGHT: Final = 40
    #: The height of a group's heading.
    SECTION: Final = 26

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        heading = self.SECTION if index.data(SectionRole) else 0
        return QSize(option.rect.width(), self.HEIGHT + heading)

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        assert painter is not None
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(8, 2, -8, -2)
        section = index.data(SectionRole)
        if section:
            heading = QRectF(rect.left() + 8, rect.top() + 4, rect.width() - 8, self.SECTION - 6)
            painter.setFont(_font(option.font, 8, bold=True))
            painter.setPen(QColor(style.MUTED))
            painter.drawText(
                heading, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(section)
            )
            rect.setTop(rect.top() + self.SECTION)
        background = QColor(style.SIDEBAR)
        if option.state & QStyle.StateFlag.State_MouseOver:
            background = QColor(style.HOVER)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(background)
            painter.drawRoundedRect(rect, 8, 8)
        name = str(index.data(NameRole))
        identifier = int(index.data(IdRole))
        online = bool(index.data(OnlineRole))
        avatar = QRectF(rect.left() + 6, rect.center().y() - 13, 26, 26)
        draw_avatar(painter, avatar, name, identifier, online=online, ring=background)
        left = avatar.right() + 10
        right = rect.right() - 4
        pills: list[tuple[str, str, str]] = []
        badge = ROLE_BADGES.get(str(index.data(RoleRole)))
        if badge is not None:
            pills.append(badge)
        if index.data(IsMeRole):
            pills.append(("you", style.ACCENT_DARK, style.ACCENT_LIGHT))
        pill_font = _font(option.font, 7.5, bold=True)
        pill_metrics = QFontMetrics(pill_font)
        widths = [pill_metrics.horizontalAdvance(text) + 12 for text, _, _ in pills]
        font = _font(option.font, 9.5)
        metrics = QFontMetrics(font)
        room_for_name = int(right - left - sum(w + 6 for w in widths))
        text = metrics.elidedText(
            f"{name}({identifier})", Qt.TextElideMode.ElideRight, room_for_name
        )
        painter.setFont(font)
        painter.setPen(QColor(style.TEXT if online else style.MUTED))
        painter.drawText(
            QRectF(left, rect.top(), right - left, rect.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            text,
        )
        x = left + metrics.horizontalAdvance(text) + 6
        painter.setFont(pill_font)
        for (pill_text, colour, fill), width in zip(pills, widths, strict=True):
            pill = QRectF(x, rect.center().y() - 8, width, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(fill))
            painter.drawRoundedRect(pill, 8, 8)
            painter.setPen(QColor(colour))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, pill_text)
            x += width + 6
        painter.restore()


class RoomResultDelegate(QStyledItemDelegate):
    """
    A room a C{list_rooms} search found, on two lines cut to the width of
    the list (it never scrolls sideways): C{name(id)}, marked "joined" when
    we are in it, then its member count and topic.
    """

    HEIGHT: Final = 42
    PAD: Final = 8

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        # No wider than the list: a wider hint is what makes it scroll.
        return QSize(0, self.HEIGHT)

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        assert painter is not None
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(2, 1, -2, -1)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(style.ACCENT_LIGHT if selected else style.HOVER))
            painter.drawRoundedRect(rect, 6, 6)
        left, right = rect.left() + self.PAD, rect.right() - self.PAD
        joined = bool(index.data(JoinedRole))
        pill_font = _font(option.font, 7.5, bold=True)
        pill_width = QFontMetrics(pill_font).horizontalAdvance("joined") + 12 if joined else 0
        name_font = _font(option.font, 9.5, bold=True)
        metrics = QFontMetrics(name_font)
        top = rect.top() + 4
        name_width = int(right - left - (pill_width + 6 if joined else 0))
        name = f"{index.data(NameRole)}({index.data(IdRole)})"
        shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, name_width)
        painter.setFont(name_font)
        painter.setPen(QColor(style.MUTED if joined else style.TEXT))
        line = QRectF(left, top, right - left, metrics.height())
        painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
        if joined:
            x = left + metrics.horizontalAdvance(shown) + 6
            pill = QRectF(x, line.center().y() - 8, pill_width, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(style.ACCENT_LIGHT))
            painter.drawRoundedRect(pill, 8, 8)
            painter.setFont(pill_font)
            painter.setPen(QColor(style.ACCENT_DARK))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, "joined")
        detail_font = _font(option.font, 8.5)
        detail_metrics = QFontMetrics(detail_font)
        detail = " ".join(str(index.data(DetailRole) or "").split())
        painter.setFont(detail_font)
        painter.setPen(QColor(style.MUTED))
        painter.drawText(
            QRectF(left, line.bottom() + 1, right - left, detail_metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            detail_metrics.elidedText(detail, Qt.TextElideMode.ElideRight, int(right - left)),
        )
        painter.restore()


@dataclass(frozen=True)
class _BubbleLayout:
    """
    Where the parts of one timeline row go, relative to the row's top left.

    @ivar quote: the quote of the message it answers, if any.
    @ivar chips: each reaction's chip.
    """

    height: int
    date_rect: QRectF | None
    name_rect: QRectF | None
    avatar_rect: QRectF | None
    bubble: QRectF
    document: QTextDocument
    text_origin: QPointF
    footer: QRectF
    quote: QRectF | None = None
    chips: list[tuple[QRectF, Reaction]] = field(default_factory=list)
    attachment: _Attachment | None = None


@dataclass(frozen=True)
class _Card:
    """
    What a file's card says, and the buttons it has.

    @ivar detail: the line under the name: its size, or how far its
        transfer got.
    @ivar buttons: each button's text and what a click on it is (a
        L{Hit}), right to left.
    @ivar progress: how far the transfer shown got, 0 to 1, or L{None}.
    """

    name: str
    mark: str
    detail: str
    buttons: tuple[tuple[str, Hit], ...]
    progress: float | None


@dataclass(frozen=True)
class _Attachment:
    """
    Where a file message's file goes in its bubble: an image, or a card
    with its name, size and buttons.

    @ivar rect: the image, or the card.
    @ivar file: the stored file, or L{None} for one still being sent.
    @ivar card: what the card shows, for a file that is no image shown
        inline.
    @ivar buttons: where each of the card's buttons is, with its hit.
    """

    rect: QRectF
    file: File | None
    card: _Card | None = None
    buttons: tuple[tuple[QRectF, str, Hit], ...] = ()


#: What a click on a timeline row hit: a quote (the id of the message it
#: quotes), a reaction chip (its emoji), an image (its file id), or a
#: file card's button: C{save} or C{cancel_save} (a file id),
#: C{cancel_upload} or C{retry_upload} (the pending message's
#: C{client_msg_id}).
Hit = tuple[str, int | str]


#: What a deleted message shows in its place.
DELETED: Final = "message deleted"


def _mark(name: str) -> str:
    """
    @return: what a file card's icon says: the file's extension, in
        capitals, at most four letters (C{"FILE"} without one).
    """
    extension = os.path.splitext(name)[1][1:5].upper()
    return extension if extension.isalnum() else "FILE"


def _chip_text(reaction: Reaction) -> str:
    return f"{reaction.emoji} {len(reaction.user_ids)}"


def day_label(day: date, today: date | None = None) -> str:
    """
    @return: how a day separator names C{day}: "Today", "Yesterday", or
        the date.
    """
    today = today or date.today()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return day.strftime("%A, %d %B %Y")


class DocumentCache:
    """
    Laid-out text, by text, width and font: a delegate lays out each text
    once, not at every size hint and paint.  Past C{limit} documents the
    cache starts again empty.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._documents: dict[tuple[str, int, str, bool], QTextDocument] = {}

    def get(
        self, text: str, width: int, font: QFont, html: bool = False, shrink: bool = False
    ) -> QTextDocument:
        """
        @param html: C{text} is HTML (else plain text).
        @param shrink: make the document no wider than its text needs.
        @return: C{text} laid out in C{font}, wrapped at C{width}.
        """
        key = (text, width, font.toString(), html)
        document = self._documents.get(key)
        if document is None:
            if len(self._documents) > self._limit:
                self._documents.clear()
            document = QTextDocument()
            document.setDocumentMargin(0)
            document.setDefaultFont(font)
            option = QTextOption()
            option.setWrapMode(QTextOption.WrapAtWordBoundaryOrAnywhere)
            document.setDefaultTextOption(option)
            if html:
                document.setHtml(text)
            else:
                document.setPlainText(text)
            document.setTextWidth(width)
            if shrink:
                document.setTextWidth(min(width, int(document.idealWidth()) + 1))
            self._documents[key] = document
        return document


class MessageDelegate(QStyledItemDelegate):
    """
    A timeline row: a bubble (ours on the right, others' on the left with
    avatar and name at the start of a run), a centred note for system
    messages, and a day separator when the day changes.
    """

    MARGIN: Final = 16
    AVATAR: Final = 32
    PAD_X: Final = 12
    PAD_Y: Final = 7
    DATE_HEIGHT: Final = 38
    GROUP_GAP: Final = 10
    GAP: Final = 3
    #: Seconds after which the same sender starts a new run.
    RUN_BREAK: Final = 300

    #: The largest an inline image shows, and its size while unknown.
    IMAGE_WIDTH: Final = 420
    IMAGE_HEIGHT: Final = 320
    PLACEHOLDER: Final = QSize(280, 180)
    #: A file card's size.
    CARD_WIDTH: Final = 320
    CARD_MIN_WIDTH: Final = 220
    CARD_HEIGHT: Final = 56

    def __init__(self, view: QAbstractItemView, files: FileStore | None = None) -> None:
        """
        @param files: the images and saves file messages show; without
            it, images show as placeholders and no save shows progress.
        """
        super().__init__(view)
        self._view = view
        self.files = files
        self._documents = DocumentCache(2000)

    # Layout.

    def _document(self, text: str, width: int, font: QFont) -> QTextDocument:
        return self._documents.get(text, width, font, shrink=True)

    def _starts_day(self, index: QModelIndex) -> bool:
        if index.row() == 0:
            return True
        before = index.sibling(index.row() - 1, 0)
        return bool(before.data(DateRole) != index.data(DateRole))

    def _starts_run(self, index: QModelIndex) -> bool:
        if index.row() == 0 or self._starts_day(index):
            return True
        before = index.sibling(index.row() - 1, 0)
        if before.data(KindRole) == "system":
            return True
        if before.data(SenderIdRole) != index.data(SenderIdRole):
            return True
        earlier, later = before.data(MomentRole), index.data(MomentRole)
        if earlier is None or later is None:
            return False
        return bool((later - earlier).total_seconds() > self.RUN_BREAK)

    def _width(self, option: QStyleOptionViewItem) -> int:
        viewport = self._view.viewport()
        return max(200, viewport.width() if viewport is not None else option.rect.width())

    def _layout(self, option: QStyleOptionViewItem, index: QModelIndex) -> _BubbleLayout:
        width = self._width(option)
        y = 0.0
        date_rect = None
        if self._starts_day(index):
            date_rect = QRectF(0, 6, width, self.DATE_HEIGHT - 12)
            y = self.DATE_HEIGHT
        small = _font(option.font, 8)
        footer_height = QFontMetrics(small).height()
        if index.data(KindRole) == "system":
            font = _font(option.font, 8.5)
            font.setItalic(True)
            document = self._document(str(index.data()), int(width * 0.7), font)
            size = document.size()
            bubble = QRectF(
                (width - size.width()) / 2 - 12, y + 6, size.width() + 24, size.height() + 10
            )
            origin = QPointF(bubble.left() + 12, bubble.top() + 5)
            return _BubbleLayout(
                int(bubble.bottom() + 6), date_rect, None, None, bubble, document, origin, QRectF()
            )
        own = bool(index.data(OwnRole))
        run = self._starts_run(index)
        y += self.GROUP_GAP if run else self.GAP
        name_rect = None
        avatar_rect = None
        left = self.MARGIN if own else self.MARGIN + self.AVATAR + 8
        usable = width - left - self.MARGIN
        max_text = int(min(620, usable * (0.72 if not own else 0.68))) - 2 * self.PAD_X
        if run and not own:
            name_height = QFontMetrics(_font(option.font, 9, bold=True)).height()
            name_rect = QRectF(left + 2, y, usable, name_height)
            avatar_rect = QRectF(self.MARGIN, y + 2, self.AVATAR, self.AVATAR)
            y += name_height + 2
        entry = index.data(EntryRole)
        deleted = isinstance(entry, Message) and entry.deleted
        text_font = option.font
        if deleted:
            text_font = QFont(option.font)
            text_font.setItalic(True)
        text = DELETED if deleted else str(index.data())
        document = self._document(text, max(60, max_text), text_font)
        text_size = document.size()
        attachment_size = self._attachment_size(entry, max_text)
        attachment_height = 0.0
        if attachment_size is not None:
            attachment_height = attachment_size.height() + (6 if text else 0)
            if not text:
                text_size = QSizeF(0, 0)  # no caption
        footer_text = self._footer_text(index)
        footer_width = QFontMetrics(small).horizontalAdvance(footer_text)
        inner = max(text_size.width(), footer_width)
        if attachment_size is not None:
            inner = max(inner, attachment_size.width())
        quote = entry.reply_to if entry is not None else None
        quote_height = 0.0
        if quote is not None:
            quote_height = 2 * QFontMetrics(small).height() + 10
            inner = max(inner, min(max_text, 240))
        reactions = entry.reactions if isinstance(entry, Message) else ()
        chip_height = QFontMetrics(option.font).height() + 6
        chip_sizes = [self._chip_width(option.font, r) for r in reactions]
        if chip_sizes:
            inner = max(inner, min(max_text, max(chip_sizes)))
        # The reaction chips flow in lines as wide as the text allows.
        chip_places: list[tuple[float, float, float]] = []
        line_width = max(inner, float(max_text)) if chip_sizes else inner
        x = 0.0
        line = 0
        for chip_width in chip_sizes:
            if x > 0 and x + chip_width > line_width:
                x, line = 0.0, line + 1
            chip_places.append((x, line * (chip_height + 4), chip_width))
            x += chip_width + 4
        if chip_places:
            inner = max(inner, max(cx + cw for cx, _, cw in chip_places))
        chips_height = (line + 1) * (chip_height + 4) + 2 if chip_places else 0.0
        bubble_width = inner + 2 * self.PAD_X
        bubble_height = (
            quote_height
            + attachment_height
            + text_size.height()
            + chips_height
            + footer_height
            + 2 * self.PAD_Y
            + 1
        )
        bubble_left = width - self.MARGIN - bubble_width if own else left
        bubble = QRectF(bubble_left, y, bubble_width, bubble_height)
        quote_rect = None
        top = bubble.top() + self.PAD_Y
        if quote is not None:
            quote_rect = QRectF(bubble.left() + self.PAD_X, top, inner, quote_height - 6)
            top += quote_height
        attachment = None
        if attachment_size is not None:
            place = QRectF(QPointF(bubble.left() + self.PAD_X, top), attachment_size)
            attachment = self._place_attachment(option, entry, place)
            top += attachment_height
        origin = QPointF(bubble.left() + self.PAD_X, top)
        chips_top = origin.y() + text_size.height() + 4
        chips = [
            (QRectF(origin.x() + cx, chips_top + cy, cw, chip_height), reaction)
            for (cx, cy, cw), reaction in zip(chip_places, reactions, strict=True)
        ]
        footer = QRectF(
            bubble.left() + self.PAD_X,
            origin.y() + text_size.height() + chips_height + 1,
            inner,
            footer_height,
        )
        height = bubble.bottom()
        if avatar_rect is not None:
            height = max(height, avatar_rect.bottom())
        return _BubbleLayout(
            int(height + 1),
            date_rect,
            name_rect,
            avatar_rect,
            bubble,
            document,
            origin,
            footer,
            quote_rect,
            chips,
            attachment,
        )

    # Files.

    @staticmethod
    def _carried(entry: object) -> File | PendingFile | None:
        """
        @return: the file a timeline row carries (none once deleted).
        """
        if isinstance(entry, Message) and not entry.deleted:
            return entry.file
        if isinstance(entry, PendingMessage):
            return entry.file
        return None

    def _attachment_size(self, entry: object, max_text: int) -> QSizeF | None:
        """
        @return: the size of the image or card of a row's file, if any.
        """
        file = self._carried(entry)
        if file is None:
            return None
        if isinstance(file, File) and file.image:
            known = self.files.image_size(file) if self.files is not None else None
            natural = known if known is not None and not known.isEmpty() else self.PLACEHOLDER
            room = QSize(min(self.IMAGE_WIDTH, max(80, max_text)), self.IMAGE_HEIGHT)
            shown = natural
            if natural.width() > room.width() or natural.height() > room.height():
                shown = natural.scaled(room, Qt.AspectRatioMode.KeepAspectRatio)
            return QSizeF(max(shown.width(), 24), max(shown.height(), 24))
        return QSizeF(max(self.CARD_MIN_WIDTH, min(self.CARD_WIDTH, max_text)), self.CARD_HEIGHT)

    def _card(self, entry: object) -> _Card:
        """
        @return: what the card of a file that shows no image says: a
            stored file's size and Save (or how far its save got, and
            Cancel), or how far a file being sent got and Cancel (or why it
            failed, and Retry and Dismiss).
        """
        if isinstance(entry, PendingMessage):
            assert entry.file is not None
            pending = entry.file
            mark = _mark(pending.name)
            if entry.error is not None:
                buttons: tuple[tuple[str, Hit], ...] = (
                    ("Dismiss", ("cancel_upload", entry.client_msg_id)),
                    ("Retry", ("retry_upload", entry.client_msg_id)),
                )
                return _Card(pending.name, mark, texts.human_size(pending.size), buttons, None)
            if pending.file_id is not None:
                return _Card(pending.name, mark, texts.UPLOAD_SENDING, (), 1.0)
            cancel = (("Cancel", ("cancel_upload", entry.client_msg_id)),)
            if not pending.uploading:
                return _Card(pending.name, mark, texts.UPLOAD_WAITING, cancel, None)
            done = pending.sent / pending.size if pending.size else 0.0
            detail = texts.uploading(pending.sent, pending.size)
            return _Card(pending.name, mark, detail, cancel, done)
        assert isinstance(entry, Message) and entry.file is not None
        file = entry.file
        saving = self.files.saving(file.id) if self.files is not None else None
        if saving is not None:
            done, total = saving
            cancel = (("Cancel", ("cancel_save", file.id)),)
            fraction = done / total if total else 0.0
            return _Card(file.name, _mark(file.name), texts.saving(done, total), cancel, fraction)
        save = (("Save", ("save", file.id)),)
        return _Card(file.name, _mark(file.name), texts.human_size(file.size), save, None)

    def _place_attachment(
        self, option: QStyleOptionViewItem, entry: object, rect: QRectF
    ) -> _Attachment:
        """
        @return: where the parts of a row's image or card go, in C{rect}.
        """
        file = self._carried(entry)
        stored = file if isinstance(file, File) else None
        if stored is not None and stored.image:
            return _Attachment(rect, stored)
        card = self._card(entry)
        font = _font(option.font, 8.5, bold=True)
        metrics = QFontMetrics(font)
        right = rect.right() - 10
        places: list[tuple[QRectF, str, Hit]] = []
        for text, hit in card.buttons:
            width = metrics.horizontalAdvance(text) + 22
            place = QRectF(right - width, rect.center().y() - 13, width, 26)
            places.append((place, text, hit))
            right = place.left() - 6
        return _Attachment(rect, stored, card, tuple(places))

    def _paint_attachment(
        self, painter: QPainter, option: QStyleOptionViewItem, attachment: _Attachment, own: bool
    ) -> None:
        painter.save()
        rect = attachment.rect
        file = attachment.file
        if file is not None and file.image:
            self._paint_image(painter, option, rect, file)
            painter.restore()
            return
        card = attachment.card
        assert card is not None
        painter.setPen(QPen(QColor(style.BORDER), 1))
        painter.setBrush(QColor("#FFFFFF" if own else style.CHAT))
        painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        icon = QRectF(rect.left() + 10, rect.center().y() - 19, 30, 38)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(style.ACCENT))
        painter.drawRoundedRect(icon, 5, 5)
        painter.setPen(QColor("#FFFFFF"))
        painter.setFont(_font(option.font, 6.5, bold=True))
        painter.drawText(icon, Qt.AlignmentFlag.AlignCenter, card.mark)
        left = icon.right() + 10
        right = (attachment.buttons[-1][0].left() if attachment.buttons else rect.right()) - 8
        name_font = _font(option.font, 9.5, bold=True)
        name_metrics = QFontMetrics(name_font)
        detail_font = _font(option.font, 8)
        detail_metrics = QFontMetrics(detail_font)
        top = rect.center().y() - (name_metrics.height() + detail_metrics.height() + 2) / 2
        painter.setFont(name_font)
        painter.setPen(QColor(style.TEXT))
        painter.drawText(
            QRectF(left, top, right - left, name_metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            name_metrics.elidedText(card.name, Qt.TextElideMode.ElideMiddle, int(right - left)),
        )
        painter.setFont(detail_font)
        painter.setPen(QColor(style.MUTED))
        painter.drawText(
            QRectF(left, top + name_metrics.height() + 2, right - left, detail_metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            detail_metrics.elidedText(card.detail, Qt.TextElideMode.ElideRight, int(right - left)),
        )
        painter.setFont(_font(option.font, 8.5, bold=True))
        for place, text, hit in attachment.buttons:
            primary = hit[0] in ("save", "retry_upload")
            painter.setPen(QPen(QColor(style.ACCENT if primary else style.BORDER), 1))
            painter.setBrush(QColor(style.ACCENT if primary else "#FFFFFF"))
            painter.drawRoundedRect(place.adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
            painter.setPen(QColor("#FFFFFF" if primary else style.TEXT))
            painter.drawText(place, Qt.AlignmentFlag.AlignCenter, text)
        if card.progress is not None:
            self._paint_progress(
                painter, QRectF(rect.left() + 8, rect.bottom() - 6, rect.width() - 16, 3), card
            )
        painter.restore()

    def _paint_progress(self, painter: QPainter, rect: QRectF, card: _Card | float) -> None:
        fraction = card.progress if isinstance(card, _Card) else card
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(style.BORDER))
        painter.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
        done = QRectF(
            rect.left(), rect.top(), rect.width() * max(0.0, min(1.0, fraction or 0)), rect.height()
        )
        painter.setBrush(QColor(style.ACCENT))
        painter.drawRoundedRect(done, rect.height() / 2, rect.height() / 2)

    def _paint_image(
        self, painter: QPainter, option: QStyleOptionViewItem, rect: QRectF, file: File
    ) -> None:
        files = self.files
        device = painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 1.0
        pixmap = files.pixmap(file, rect.size().toSize(), ratio) if files is not None else None
        path = QPainterPath()
        path.addRoundedRect(rect, 8, 8)
        if pixmap is not None:
            painter.setClipPath(path)
            painter.drawPixmap(rect.topLeft(), pixmap)
            painter.setClipping(False)
            saving = files.saving(file.id) if files is not None else None
            if saving is not None:
                bar = QRectF(rect.left() + 8, rect.bottom() - 9, rect.width() - 16, 4)
                self._paint_progress(painter, bar, saving[0] / saving[1] if saving[1] else 0.0)
            return
        # Not in memory yet: fetched now that it is on screen (or failed).
        painter.setPen(QPen(QColor(style.BORDER), 1))
        painter.setBrush(QColor(style.QUOTE))
        painter.drawPath(path)
        error = files.image_error(file) if files is not None else None
        if error is None and files is not None:
            files.want(file)
        painter.setFont(_font(option.font, 8.5))
        painter.setPen(QColor(style.DANGER if error else style.MUTED))
        text = error or texts.IMAGE_LOADING
        painter.drawText(
            rect.adjusted(12, 8, -12, -8),
            int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
            f"{file.name}\n{text}",
        )
        loading = files.loading(file) if files is not None else None
        if loading is not None:
            bar = QRectF(rect.left() + 16, rect.bottom() - 14, rect.width() - 32, 4)
            self._paint_progress(painter, bar, loading[0] / loading[1] if loading[1] else 0.0)

    def _chip_width(self, font: QFont, reaction: Reaction) -> float:
        return float(QFontMetrics(font).horizontalAdvance(_chip_text(reaction)) + 16)

    def _footer_text(self, index: QModelIndex) -> str:
        status = index.data(StatusRole)
        if status == PENDING:
            return "Sending…"
        if status == FAILED:
            return f"Not sent: {index.data(ErrorRole)}"
        entry = index.data(EntryRole)
        edited = isinstance(entry, Message) and entry.edited_at is not None
        return str(index.data(TimeRole) or "") + (" · edited" if edited else "")

    def hit(self, option: QStyleOptionViewItem, index: QModelIndex, point: QPointF) -> Hit | None:
        """
        @param point: where the row was clicked, relative to its top left.
        @return: the quote, reaction chip, image or file card button under
            C{point}, if any (L{Hit}).
        """
        if index.data(KindRole) == "system":
            return None
        layout = self._layout(option, index)
        entry = index.data(EntryRole)
        if layout.quote is not None and layout.quote.contains(point):
            return ("quote", entry.reply_to.id)
        attachment = layout.attachment
        if attachment is not None and attachment.rect.contains(point):
            for place, _, hit in attachment.buttons:
                if place.contains(point):
                    return hit
            if attachment.file is not None and attachment.file.image:
                return ("image", attachment.file.id)
            if attachment.file is not None and attachment.card is not None:
                # The whole card of a stored file saves it, unless it is
                # being saved: then only its Cancel button does anything.
                if not any(hit[0] == "cancel_save" for _, hit in attachment.card.buttons):
                    return ("save", attachment.file.id)
            return None
        for rect, reaction in layout.chips:
            if rect.contains(point):
                return ("reaction", reaction.emoji)
        return None

    # Painting.

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self._width(option), self._layout(option, index).height)

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        assert painter is not None
        layout = self._layout(option, index)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.translate(option.rect.topLeft())
        if option.state & QStyle.StateFlag.State_Selected:
            # Marked for a moment: the message a quote was clicked for.
            painter.fillRect(
                QRectF(0, 0, option.rect.width(), layout.height), QColor(style.MENTION)
            )
        if layout.date_rect is not None:
            self._paint_day(painter, option, layout.date_rect, index.data(DateRole))
        if index.data(KindRole) == "system":
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#ECEFF4"))
            radius = min(11.0, layout.bubble.height() / 2)
            painter.drawRoundedRect(layout.bubble, radius, radius)
            self._paint_document(painter, layout.document, layout.text_origin, QColor(style.MUTED))
            painter.restore()
            return
        own = bool(index.data(OwnRole))
        status = index.data(StatusRole)
        sender_id = int(index.data(SenderIdRole) or 0)
        if layout.avatar_rect is not None:
            draw_avatar(painter, layout.avatar_rect, str(index.data(SenderRole)), sender_id)
        if layout.name_rect is not None:
            painter.setFont(_font(option.font, 9, bold=True))
            painter.setPen(style.colour_for(sender_id))
            painter.drawText(
                layout.name_rect,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                index.data(SenderRole),
            )
        entry = index.data(EntryRole)
        if status == PENDING and not (isinstance(entry, PendingMessage) and entry.file):
            # A file being sent stays opaque: its progress and Cancel matter.
            painter.setOpacity(0.65)
        mentions_me = bool(index.data(MentionsMeRole))
        if mentions_me:
            painter.setBrush(QColor(style.MENTION))
        else:
            painter.setBrush(QColor(style.BUBBLE_OWN if own else style.BUBBLE_OTHER))
        if status == FAILED:
            painter.setPen(QPen(QColor(style.DANGER), 1.2))
        elif mentions_me:
            painter.setPen(QPen(QColor(style.WARNING), 1.2))
        elif own:
            painter.setPen(Qt.PenStyle.NoPen)
        else:
            painter.setPen(QPen(QColor(style.BORDER), 1))
        painter.drawRoundedRect(layout.bubble.adjusted(0.5, 0.5, -0.5, -0.5), 12, 12)
        if layout.quote is not None:
            self._paint_quote(painter, option, layout.quote, entry.reply_to)
        if layout.attachment is not None:
            self._paint_attachment(painter, option, layout.attachment, own)
        deleted = isinstance(entry, Message) and entry.deleted
        colour = QColor(style.MUTED if deleted else style.TEXT)
        self._paint_document(painter, layout.document, layout.text_origin, colour)
        me = self._view_me()
        for rect, reaction in layout.chips:
            self._paint_chip(painter, option, rect, reaction, me in reaction.user_ids)
        painter.setFont(_font(option.font, 8))
        painter.setPen(QColor(style.DANGER if status == FAILED else style.MUTED))
        painter.drawText(
            layout.footer,
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            self._footer_text(index),
        )
        painter.restore()

    def _view_me(self) -> int:
        model = self._view.model()
        me = getattr(model, "me", None)
        return int(me) if me is not None else -1

    def _paint_quote(
        self, painter: QPainter, option: QStyleOptionViewItem, rect: QRectF, quote: Quote
    ) -> None:
        painter.save()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(style.QUOTE))
        painter.drawRoundedRect(rect, 6, 6)
        painter.setBrush(style.colour_for(quote.sender_id or 0))
        painter.drawRoundedRect(QRectF(rect.left(), rect.top(), 3, rect.height()), 1.5, 1.5)
        small = _font(option.font, 8)
        metrics = QFontMetrics(small)
        line = metrics.height()
        text_rect = QRectF(rect.left() + 9, rect.top() + 3, rect.width() - 14, line)
        painter.setFont(_font(option.font, 8, bold=True))
        painter.setPen(style.colour_for(quote.sender_id or 0))
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft, quote.sender_name or "?")
        small.setItalic(quote.deleted)
        painter.setFont(small)
        painter.setPen(QColor(style.MUTED))
        shown = DELETED if quote.deleted else " ".join(quote.text.split())
        elided = metrics.elidedText(shown, Qt.TextElideMode.ElideRight, int(text_rect.width()))
        painter.drawText(text_rect.translated(0, line), Qt.AlignmentFlag.AlignLeft, elided)
        painter.restore()

    def _paint_chip(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        rect: QRectF,
        reaction: Reaction,
        mine: bool,
    ) -> None:
        painter.save()
        painter.setBrush(QColor(style.ACCENT_LIGHT if mine else style.CHAT))
        painter.setPen(QPen(QColor(style.ACCENT if mine else style.BORDER), 1))
        painter.drawRoundedRect(
            rect.adjusted(0.5, 0.5, -0.5, -0.5), rect.height() / 2, rect.height() / 2
        )
        painter.setFont(option.font)
        painter.setPen(QColor(style.ACCENT_DARK if mine else style.TEXT))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, _chip_text(reaction))
        painter.restore()

    def _paint_document(
        self, painter: QPainter, document: QTextDocument, origin: QPointF, colour: QColor
    ) -> None:
        painter.save()
        painter.translate(origin)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.Text, colour)
        layout = document.documentLayout()
        assert layout is not None
        layout.draw(painter, context)
        painter.restore()

    def _paint_day(
        self, painter: QPainter, option: QStyleOptionViewItem, rect: QRectF, day: date
    ) -> None:
        text = day_label(day)
        font = _font(option.font, 8.5, bold=True)
        metrics = QFontMetrics(font)
        pill_width = metrics.horizontalAdvance(text) + 24
        pill = QRectF(rect.center().x() - pill_width / 2, rect.top(), pill_width, rect.height())
        painter.setPen(QPen(QColor(style.BORDER), 1))
        y = rect.center().y()
        painter.drawLine(QPointF(self.MARGIN, y), QPointF(pill.left() - 8, y))
        painter.drawLine(QPointF(pill.right() + 8, y), QPointF(rect.right() - self.MARGIN, y))
        painter.setBrush(QColor("#FFFFFF"))
        painter.drawRoundedRect(pill, rect.height() / 2, rect.height() / 2)
        painter.setFont(font)
        painter.setPen(QColor(style.MUTED))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


def highlighted(text: str, spans: list[Span]) -> str:
    """
    @return: C{text} as rich text, with each of C{spans} marked.
    """
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts.append(escape(text[at:start]))
        parts.append(
            f'<span style="background-color: {style.HIGHLIGHT}; font-weight: 600;">'
            f"{escape(text[start:end])}</span>"
        )
        at = end
    parts.append(escape(text[at:]))
    return "".join(parts)


class SearchResultDelegate(QStyledItemDelegate):
    """
    A message a search found: its conversation's avatar and name, who sent
    it and when, then its text with the terms searched for marked.
    """

    PAD: Final = 10
    AVATAR: Final = 28

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self._view = view
        self._documents = DocumentCache(500)

    def _document(self, index: QModelIndex, width: int, font: QFont) -> QTextDocument:
        html = highlighted(str(index.data()), list(index.data(HighlightRole) or ()))
        return self._documents.get(html, width, font, html=True)

    #: Where the text starts, from the row's left.
    TEXT_LEFT: Final = 6 + PAD + AVATAR + 10

    def _text_width(self, option: QStyleOptionViewItem) -> int:
        viewport = self._view.viewport()
        width = viewport.width() if viewport is not None else option.rect.width()
        return max(80, width - self.TEXT_LEFT - 6 - self.PAD)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        title = QFontMetrics(_font(option.font, 9.5, bold=True)).height()
        document = self._document(index, self._text_width(option), _font(option.font, 9.5))
        height = self.PAD + title + 3 + document.size().height() + self.PAD + 4
        return QSize(option.rect.width(), int(max(height, self.AVATAR + 2 * self.PAD + 4)))

    def paint(
        self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex
    ) -> None:
        assert painter is not None
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(6, 2, -6, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        background = QColor("#FFFFFF")
        if selected or hovered:
            background = QColor(style.SELECTED if selected else style.HOVER)
        painter.setPen(QPen(QColor(style.BORDER), 1))
        painter.setBrush(background)
        painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)

        key = index.data(KeyRole)
        conversation = str(index.data(ConversationRole))
        avatar = QRectF(rect.left() + self.PAD, rect.top() + self.PAD, self.AVATAR, self.AVATAR)
        draw_avatar(painter, avatar, conversation, int(key[1]), round_=key[0] == PRIVATE)

        left = option.rect.left() + self.TEXT_LEFT
        right = rect.right() - self.PAD
        small = _font(option.font, 8)
        time_text = str(index.data(TimeRole) or "")
        time_width = QFontMetrics(small).horizontalAdvance(time_text)
        title_font = _font(option.font, 9.5, bold=True)
        metrics = QFontMetrics(title_font)
        top = rect.top() + self.PAD - 2
        line = QRectF(left, top, right - left, metrics.height())
        painter.setFont(small)
        painter.setPen(QColor(style.MUTED))
        painter.drawText(
            line, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, time_text
        )
        room = key[0] != PRIVATE
        name = f"#{conversation}" if room else conversation
        room_width = int((line.width() - time_width - 8) * 0.6)
        shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, room_width)
        painter.setFont(title_font)
        painter.setPen(QColor(style.TEXT))
        painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
        sender_left = left + metrics.horizontalAdvance(shown) + 6
        sender_font = _font(option.font, 9)
        sender_metrics = QFontMetrics(sender_font)
        sender_width = int(right - time_width - 8 - sender_left)
        sender = sender_metrics.elidedText(
            f"· {index.data(SenderRole)}", Qt.TextElideMode.ElideRight, sender_width
        )
        painter.setFont(sender_font)
        painter.setPen(style.colour_for(int(index.data(SenderIdRole) or 0)))
        painter.drawText(
            QRectF(sender_left, top, max(0, sender_width), metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            sender,
        )

        document = self._document(index, self._text_width(option), _font(option.font, 9.5))
        painter.translate(QPointF(left, line.bottom() + 3))
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.Text, QColor(style.TEXT))
        layout = document.documentLayout()
        assert layout is not None
        layout.draw(painter, context)
        painter.restore()
