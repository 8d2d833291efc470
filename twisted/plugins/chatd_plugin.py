"""
The C{chatd} plugin for twistd: C{twistd -n chatd --port 8998}.
"""

from twisted.application.service import ServiceMaker

chatd = ServiceMaker("chatd", "chatd.tap", "A small self-hosted chat server.", "chatd")
