"""
How the client looks: one palette, one font, one style sheet, and the
app's icon, drawn rather than shipped.
"""

from __future__ import annotations

from typing import Final

from PyQt5.QtCore import QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QFontDatabase, QIcon, QPainter, QPainterPath, QPixmap
from PyQt5.QtWidgets import QApplication, QWidget

# The palette, after Element's light theme.
ACCENT: Final = "#0DBD8B"
ACCENT_DARK: Final = "#0A9C73"
ACCENT_LIGHT: Final = "#E6F7F1"
TEXT: Final = "#17191C"
MUTED: Final = "#737D8C"
BORDER: Final = "#E3E8F0"
SIDEBAR: Final = "#F4F6FA"
CHAT: Final = "#F7F8FA"
BUBBLE_OWN: Final = "#DDF5EC"
BUBBLE_OTHER: Final = "#FFFFFF"
ONLINE: Final = "#2EB67D"
OFFLINE: Final = "#C1C7D0"
DANGER: Final = "#E5484D"
WARNING: Final = "#F5A524"
SELECTED: Final = "#E1E7F0"
HOVER: Final = "#EBEFF5"
MENTION: Final = "#FFF6DD"
QUOTE: Final = "#F0F2F5"
#: The background of the terms a search found.
HIGHLIGHT: Final = "#FFE08A"

#: Colours for avatars and sender names, picked by user or room id.
AVATAR_COLOURS: Final = (
    "#368BD6",
    "#AC3BA8",
    "#0DBD8B",
    "#E64F7A",
    "#FF812D",
    "#2DC2C5",
    "#5C56F5",
    "#74D12C",
)

#: Font families tried in order; the first one installed is used.
FONT_FAMILIES: Final = ("Inter", "Noto Sans", "Cantarell", "Open Sans", "DejaVu Sans")


def colour_for(identifier: int) -> QColor:
    """
    @return: the avatar colour of a user or room id.
    """
    return QColor(AVATAR_COLOURS[identifier % len(AVATAR_COLOURS)])


STYLE_SHEET: Final = f"""
QWidget {{
    color: {TEXT};
}}
QMainWindow, #LoginWindow {{
    background: #FFFFFF;
}}
#Sidebar {{
    background: {SIDEBAR};
    border-right: 1px solid {BORDER};
}}
#MemberPanel {{
    background: {SIDEBAR};
    border-left: 1px solid {BORDER};
}}
#Header {{
    background: #FFFFFF;
    border-bottom: 1px solid {BORDER};
}}
#ConversationHeader {{
    background: #FFFFFF;
    border-bottom: 1px solid {BORDER};
}}
#Composer {{
    background: #FFFFFF;
    border-top: 1px solid {BORDER};
}}
#AppTitle {{
    font-size: 15pt;
    font-weight: 700;
    color: {ACCENT_DARK};
}}
#SectionTitle {{
    color: {MUTED};
    font-size: 8pt;
    font-weight: 700;
    letter-spacing: 1px;
}}
#ConversationTitle {{
    font-size: 12pt;
    font-weight: 700;
}}
#Topic {{
    color: {TEXT};
    font-size: 9pt;
}}
#Topic[empty="true"] {{
    color: {MUTED};
    font-style: italic;
}}
#TopicField {{
    padding: 3px 8px;
}}
#Muted, #ConversationDetail, #ServerLabel, #Hint {{
    color: {MUTED};
}}
#Hint {{
    font-size: 8.5pt;
}}
#ErrorLabel {{
    color: #C0272D;
    background: #FDECEC;
    border-radius: 8px;
}}
#InfoLabel {{
    color: {ACCENT_DARK};
    background: {ACCENT_LIGHT};
    border-radius: 8px;
}}
#Placeholder {{
    color: {MUTED};
    font-size: 11pt;
}}
QListView {{
    background: transparent;
    border: none;
    outline: none;
}}
#HistoryView {{
    background: {CHAT};
}}
#SearchResults {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    border-radius: 6px;
}}
#SearchResults::item {{
    padding: 4px 6px;
}}
#SearchResults::item:selected {{
    background: {ACCENT_LIGHT};
    color: {TEXT};
}}
QLineEdit, QPlainTextEdit, QComboBox {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    border-radius: 8px;
    padding: 6px 9px;
    selection-background-color: {ACCENT};
}}
QComboBox::drop-down {{
    subcontrol-origin: padding;
    subcontrol-position: center right;
    width: 24px;
    border: none;
}}
QComboBox QAbstractItemView {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    selection-background-color: {ACCENT_LIGHT};
    selection-color: {TEXT};
}}
QLineEdit:focus, QPlainTextEdit:focus, QComboBox:focus {{
    border: 1px solid {ACCENT};
}}
#Compose {{
    border-radius: 10px;
    padding: 6px 8px;
}}
#Typing {{
    color: {MUTED};
    font-size: 8.5pt;
    font-style: italic;
    background: {CHAT};
}}
#ComposeContext {{
    background: #FFFFFF;
    border-top: 1px solid {BORDER};
}}
#ComposeContextLabel {{
    color: {ACCENT_DARK};
    font-size: 9pt;
    border-left: 3px solid {ACCENT};
    padding-left: 8px;
}}
#EmojiPicker {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    border-radius: 10px;
}}
#EmojiChoice {{
    font-size: 15pt;
    padding: 2px;
    border-radius: 6px;
}}
#EmojiChoice:hover {{
    background: {HOVER};
}}
#Completions {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    selection-background-color: {ACCENT_LIGHT};
    selection-color: {TEXT};
    padding: 2px;
}}
QPushButton {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    border-radius: 8px;
    padding: 6px 14px;
}}
QPushButton:hover {{
    background: {HOVER};
}}
QPushButton:disabled {{
    color: #A8B0BC;
}}
QPushButton#Primary {{
    background: {ACCENT};
    border: 1px solid {ACCENT};
    color: #FFFFFF;
    font-weight: 600;
}}
QPushButton#Primary:hover {{
    background: {ACCENT_DARK};
}}
QPushButton#Primary:disabled {{
    background: #9ADFC9;
    border-color: #9ADFC9;
}}
QPushButton#Danger {{
    color: {DANGER};
    border-color: #F3C1C2;
}}
QPushButton#Danger:hover {{
    background: #FDECEC;
}}
QPushButton#Flat {{
    background: transparent;
    border: none;
    color: {ACCENT_DARK};
    font-weight: 600;
    padding: 2px 6px;
}}
QPushButton#Flat:hover {{
    background: {HOVER};
}}
QPushButton#Flat:checked {{
    background: {ACCENT_LIGHT};
}}
QPushButton#JumpToLatest {{
    background: {ACCENT};
    border: 1px solid {ACCENT};
    border-radius: 14px;
    color: #FFFFFF;
    font-weight: 600;
    padding: 5px 14px;
}}
QPushButton#JumpToLatest:hover {{
    background: {ACCENT_DARK};
}}
#Segments {{
    background: {SIDEBAR};
    border: 1px solid {BORDER};
    border-radius: 10px;
}}
QPushButton#Segment {{
    border: 1px solid transparent;
    border-radius: 8px;
    padding: 6px 0px;
    background: transparent;
    color: {MUTED};
    font-weight: 600;
}}
QPushButton#Segment:hover {{
    color: {TEXT};
}}
QPushButton#Segment:checked {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    color: {TEXT};
}}
#SearchPanel {{
    background: {SIDEBAR};
    border-left: 1px solid {BORDER};
}}
#SearchStatus {{
    color: {MUTED};
    font-size: 9pt;
}}
#SearchStatus[error="true"] {{
    color: #C0272D;
    background: #FDECEC;
    border-radius: 8px;
    padding: 6px 9px;
}}
#Panel {{
    background: #FFFFFF;
    border: 1px solid {BORDER};
    border-radius: 10px;
}}
#RequestBanner {{
    background: #FFF8E6;
    border: 1px solid #F7DFA3;
    border-radius: 10px;
}}
#NoticeBar {{
    background: #FFFFFF;
    border-top: 1px solid {BORDER};
    color: {MUTED};
    padding: 5px 12px;
}}
#NoticeBar[active="true"] {{
    color: {TEXT};
    background: {ACCENT_LIGHT};
}}
#StatusChip {{
    border-radius: 10px;
    padding: 2px 10px;
    font-size: 8.5pt;
    font-weight: 600;
}}
#StatusChip[status="online"] {{
    background: {ACCENT_LIGHT};
    color: {ACCENT_DARK};
}}
#StatusChip[status="connecting"] {{
    background: #FFF4DB;
    color: #A86A00;
}}
#StatusChip[status="offline"] {{
    background: #FDECEC;
    color: {DANGER};
}}
QScrollBar:vertical {{
    background: transparent;
    width: 10px;
    margin: 2px;
}}
QScrollBar::handle:vertical {{
    background: #C9D0DA;
    border-radius: 3px;
    min-height: 30px;
}}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{
    height: 0px;
}}
QScrollBar::add-page:vertical, QScrollBar::sub-page:vertical {{
    background: transparent;
}}
QToolTip {{
    color: {TEXT};
    background: #FFFFFF;
    border: 1px solid {BORDER};
}}
"""


def pick_font_family() -> str:
    """
    @return: the first of L{FONT_FAMILIES} that is installed, or the
        application's default family.
    """
    installed = set(QFontDatabase().families())
    for family in FONT_FAMILIES:
        if family in installed:
            return family
    return QApplication.font().family()


def apply_style(app: QApplication) -> None:
    """
    Give C{app} the client's font, style sheet and icon.
    """
    app.setStyle("Fusion")
    font = QFont(pick_font_family(), 10)
    font.setHintingPreference(QFont.PreferNoHinting)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
    app.setWindowIcon(app_icon())


def restyle(widget: QWidget) -> None:
    """
    Apply the style sheet again to C{widget}, after a dynamic property it
    is styled by changed.
    """
    current = widget.style()
    if current is not None:
        current.unpolish(widget)
        current.polish(widget)


def app_icon(size: int = 64) -> QIcon:
    """
    @return: the client's icon: a speech bubble on a green rounded square.
    """
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(ACCENT))
    painter.drawRoundedRect(QRectF(0, 0, size, size), size * 0.22, size * 0.22)
    bubble = QPainterPath()
    s = size / 64
    bubble.addRoundedRect(QRectF(14 * s, 16 * s, 36 * s, 26 * s), 8 * s, 8 * s)
    tail = QPainterPath()
    tail.moveTo(22 * s, 40 * s)
    tail.lineTo(18 * s, 50 * s)
    tail.lineTo(31 * s, 41 * s)
    tail.closeSubpath()
    painter.setBrush(QColor("#FFFFFF"))
    painter.drawPath(bubble.united(tail))
    painter.setBrush(QColor(ACCENT))
    for x in (23, 32, 41):
        painter.drawEllipse(QRectF((x - 2.5) * s, 26.5 * s, 5 * s, 5 * s))
    painter.end()
    return QIcon(pixmap)
