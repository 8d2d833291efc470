"""
Before Qt starts: will its C{xcb} platform plugin load?

Without the X libraries the plugin links to, Qt prints "Could not load the
Qt platform plugin xcb ... Reinstalling the application may fix this
problem" and aborts, which tells a user nothing they can act on.  This
module asks C{ldd} which libraries the plugin cannot find and names the
packages that bring them.  Everything but L{run_ldd} is a pure function.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Final

#: The libraries of PyQt5's xcb plugin that distributions ship apart, with
#: the package that brings each on Debian/Ubuntu and on Fedora.
PACKAGES: Final[dict[str, tuple[str, str]]] = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
}


def wants_xcb(environ: Mapping[str, str], platform: str) -> bool:
    """
    @return: whether Qt will pick its xcb plugin: on Linux, with an X
        display, unless C{QT_QPA_PLATFORM} names another plugin.
    """
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0] == "xcb"
    return platform.startswith("linux") and bool(environ.get("DISPLAY"))


def missing_libraries(ldd_output: str) -> list[str]:
    """
    @return: the libraries C{ldd} reports as not found, each once, in order.
    """
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, arrow, where = line.strip().partition(" => ")
        if arrow and where.strip() == "not found" and name not in missing:
            missing.append(name)
    return missing


def advice(missing: list[str]) -> str:
    """
    @return: one sentence saying which packages to install.
    """
    debian = sorted({PACKAGES[name][0] for name in missing if name in PACKAGES})
    fedora = sorted({PACKAGES[name][1] for name in missing if name in PACKAGES})
    unknown = [name for name in missing if name not in PACKAGES]
    sentence = (
        "Qt cannot open a window: its xcb plugin needs "
        + ", ".join(missing)
        + ", which this system lacks"
    )
    if debian:
        sentence += (
            f"; install them with `sudo apt install {' '.join(debian)}` on Debian or Ubuntu"
            f" or `sudo dnf install {' '.join(fedora)}` on Fedora"
        )
    if unknown:
        sentence += f" (and whatever package provides {', '.join(unknown)})"
    return sentence + "."


def run_ldd(path: str) -> str:
    """
    @return: what C{ldd} prints for C{path}, or C{""} when there is no
        C{ldd} or it fails.
    """
    ldd = shutil.which("ldd")
    if ldd is None or not os.path.exists(path):
        return ""
    try:
        done = subprocess.run([ldd, path], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def xcb_problem(
    environ: Mapping[str, str],
    platform: str,
    plugins_path: str,
    ldd: Callable[[str], str] = run_ldd,
) -> str | None:
    """
    @param plugins_path: Qt's plugin folder (C{QLibraryInfo.PluginsPath}).
    @return: the sentence to print when Qt would fail to load its xcb
        plugin, or L{None} when it would not (or does not need it).
    """
    if not wants_xcb(environ, platform):
        return None
    missing = missing_libraries(ldd(os.path.join(plugins_path, "platforms", "libqxcb.so")))
    return advice(missing) if missing else None
