"""
C{python -m client}: the chatd desktop client.

One event loop runs everything: Qt's, with Twisted's reactor inside it
(qt5reactor).  The order matters: the excepthook first, so an exception
in a slot is reported rather than silently aborting; then the
L{QApplication}; then C{qt5reactor.install()}; only then may the reactor
be imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

log = Logger(namespace="client")


def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """
    Report an exception that reached the top of a Qt slot, and carry on.
    """
    text = "".join(traceback.format_exception(kind, value, tb))
    log.critical("Uncaught exception:\n{text}", text=text)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """
    @return: the command line's options.
    """
    parser = argparse.ArgumentParser(prog="python -m client", description="The chatd client.")
    parser.add_argument("--host", default="localhost", help="the server's host (localhost)")
    parser.add_argument("--port", type=int, default=8998, help="the server's port (8998)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--ca", metavar="PEM", help="with --tls, trust this CA certificate instead of the system's"
    )
    return parser.parse_args(list(argv))


def make_endpoint(reactor: Any, host: str, port: int, tls: bool, ca: str | None) -> Any:
    """
    @return: the client endpoint to reach the server, with TLS (checking
        the server's certificate against C{host}) when asked.
    """
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    endpoint = HostnameEndpoint(reactor, host, port)
    if not tls:
        return endpoint
    from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

    if ca is not None:
        with open(ca, "rb") as pem:
            trust: Any = Certificate.loadPEM(pem.read())
    else:
        trust = platformTrust()
    return wrapClientTLS(optionsForClientTLS(host, trustRoot=trust), endpoint)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the client until its window closes.
    """
    sys.excepthook = excepthook
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)

    from PyQt5.QtCore import QLibraryInfo

    from client.platform_check import xcb_problem

    problem = xcb_problem(os.environ, sys.platform, QLibraryInfo.location(QLibraryInfo.PluginsPath))
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1

    from PyQt5.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("chatd")
    app.setQuitOnLastWindowClosed(False)

    import qt5reactor

    qt5reactor.install()
    from PyQt5.QtCore import QStandardPaths
    from twisted.internet import reactor

    from client.session import ChatClient
    from client.state import ClientState
    from client.tokens import TOKEN_FILE, TokenFile
    from client.ui.app import ChatApp
    from client.ui.style import apply_style

    apply_style(app)
    server = f"{options.host}:{options.port}"
    endpoint = make_endpoint(reactor, options.host, options.port, options.tls, options.ca)
    # The user's configuration folder, ~/.config/chatd on Linux.
    config = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    tokens = TokenFile(os.path.join(config, TOKEN_FILE), server)
    client = ChatClient(endpoint, ClientState(), reactor, tokens=tokens)
    # Downloaded files and images, by SHA-256: ~/.cache/chatd/files on Linux.
    cache = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    window = ChatApp(client, reactor, server, cache_directory=os.path.join(cache, "files"))

    def quit_() -> None:
        client.stop().addBoth(lambda _: reactor.stop())

    window.quit_requested.connect(quit_)
    window.start()
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
