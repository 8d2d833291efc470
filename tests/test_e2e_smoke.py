"""
End to end over loopback TCP: the wire, the server and the store together.
"""

from twisted.trial.unittest import TestCase

from tests.support import logged_in, start_server


class AccountsTests(TestCase):
    """
    Register, log in, log out, and the duplicate-login kick on a real socket.
    """

    async def test_register_login_logout(self) -> None:
        """
        A registered user logs in, gets login_info, and logs out.
        """
        running = await start_server(self)
        client = await logged_in(self, running.port, "ncr")
        reply = await client.request("logout")
        self.assertEqual(reply["type"], "logout_successful")
        await client.lost
