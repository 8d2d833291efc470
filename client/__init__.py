"""
The chatd desktop client: the protocol and state without Qt, the windows
in L{client.ui}.
"""
