"""
chatd: a small self-hosted chat server on Twisted.

See docs/PROTOCOL.md for the wire protocol and README.md for running it.
"""
