"""
L{client.platform_check}: naming the packages Qt's xcb plugin lacks.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from client.platform_check import advice, missing_libraries, wants_xcb, xcb_problem

#: What ldd prints for PyQt5's libqxcb.so on a Debian machine without the
#: xcb utility libraries (shortened).
LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffc3a5f2000)
\tlibQt5XcbQpa.so.5 => /venv/PyQt5/Qt5/plugins/platforms/../../lib/libQt5XcbQpa.so.5 (0x1)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x2)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.7 => not found
"""


class PlatformCheckTests(SynchronousTestCase):
    def test_missing_libraries(self) -> None:
        """
        Each library ldd cannot find is listed once, in order.
        """
        self.assertEqual(
            missing_libraries(LDD_OUTPUT),
            ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.7"],
        )
        self.assertEqual(missing_libraries(""), [])

    def test_advice_names_packages(self) -> None:
        """
        The sentence names the Debian and Fedora packages, and the library
        itself when its package is not known.
        """
        text = advice(missing_libraries(LDD_OUTPUT))
        self.assertIn("sudo apt install libxcb-icccm4 libxcb-keysyms1`", text)
        self.assertIn("sudo dnf install xcb-util-keysyms xcb-util-wm`", text)
        self.assertIn("whatever package provides libxcb-cursor.so.7", text)
        self.assertTrue(text.endswith("."))
        self.assertNotIn("\n", text)

    def test_wants_xcb(self) -> None:
        """
        Qt uses xcb on Linux with a display, unless told otherwise.
        """
        self.assertTrue(wants_xcb({"DISPLAY": ":0"}, "linux"))
        self.assertFalse(wants_xcb({}, "linux"))
        self.assertFalse(wants_xcb({"DISPLAY": ":0"}, "darwin"))
        self.assertFalse(wants_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux"))
        self.assertTrue(wants_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux"))

    def test_problem(self) -> None:
        """
        A problem is reported only when Qt wants xcb and a library is
        missing; the plugin looked at is Qt's xcb one.
        """
        asked: list[str] = []

        def ldd(path: str) -> str:
            asked.append(path)
            return LDD_OUTPUT

        problem = xcb_problem({"DISPLAY": ":0"}, "linux", "/qt/plugins", ldd)
        self.assertEqual(asked, ["/qt/plugins/platforms/libqxcb.so"])
        self.assertIsNotNone(problem)
        self.assertIsNone(xcb_problem({"DISPLAY": ":0"}, "linux", "/qt", lambda path: ""))
        self.assertIsNone(xcb_problem({}, "linux", "/qt", ldd))
