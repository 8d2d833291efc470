"""
End to end over loopback, when clients misbehave or the link is TLS:
clients that vanish mid-frame, a client that stops reading, and TLS.
"""

from __future__ import annotations

import datetime
import json
import socket
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from chatd.protocol import Limits
from chatd.service import ChatService
from tests.support import WireClient, logged_in, socket_path, start_server

UNLIMITED = Limits(rate=1e9, burst=10**9)


class VanishingClientTests(TestCase):
    """
    Clients that disappear in the middle of a frame.
    """

    timeout = 120

    async def test_200_vanish_mid_frame(self) -> None:
        """
        200 logged-in room members that reset their connections halfway
        through a frame go offline (one push each to the room), and the
        server keeps serving.
        """
        running = await start_server(self, limits=UNLIMITED)
        observer = await logged_in(self, running.port, "observer")
        room = (await observer.request("create_room", name="hall"))["room"]["id"]
        clients = await gatherResults(
            [Deferred.fromCoroutine(logged_in(self, running.port, f"u{i}")) for i in range(200)]
        )
        for client in clients:
            reply = await client.request("join_room", name="hall")
            self.assertEqual(reply["type"], "join_successful")
        observer.pending_pushes()

        offline = []
        all_offline: Deferred[None] = Deferred()

        def on_push(payload: dict) -> None:
            if payload["type"] == "room_user_on_off_line" and not payload["online"]:
                offline.append(payload["user_id"])
                if len(offline) == len(clients):
                    all_offline.callback(None)

        original = observer.stringReceived

        def string_received(data: bytes) -> None:
            original(data)
            payload = json.loads(data)
            if "id" not in payload:
                on_push(payload)

        observer.stringReceived = string_received  # type: ignore[method-assign]
        for client in clients:
            # A length prefix for 100 bytes, then 10 of them, then a reset.
            client.transport.write(struct.pack("!I", 100) + b'{"type":"s')
            client.transport.abortConnection()
        await all_offline
        observer.pending_pushes()
        self.assertEqual(len(set(offline)), len(clients), "one offline push per member")
        self.assertEqual(len(running.server.sessions), 1)
        listing = await observer.request("list_rooms", query="hall")
        self.assertEqual(
            listing["rooms"], [{"id": room, "name": "hall", "topic": "", "member_count": 201}]
        )
        back = await logged_in(self, running.port, "u7")
        self.assertEqual((await back.request("ping"))["type"], "pong")
        online = await observer.push("room_user_on_off_line")
        self.assertEqual(online["online"], True)


class SlowReaderTests(TestCase):
    """
    A client that stops reading while a room floods.
    """

    timeout = 120

    async def test_dropped_past_max_pending(self) -> None:
        """
        The server drops a member that does not read once more than
        max_pending bytes wait unsent for it, and never queues much more
        than that; the room carries on.
        """
        limit = 64 * 1024
        running = await start_server(self, limits=Limits(rate=1e9, burst=10**9, max_pending=limit))
        sender = await logged_in(self, running.port, "sender")
        room = (await sender.request("create_room", name="flood"))["room"]["id"]
        setup = await logged_in(self, running.port, "sleepy")
        await setup.request("join_room", name="flood")
        await setup.close()
        gone = await sender.push("room_user_on_off_line")
        self.assertFalse(gone["online"])

        # A raw socket with a tiny receive buffer that logs in and never
        # reads again.
        sleepy = socket.socket()
        self.addCleanup(sleepy.close)
        sleepy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleepy.connect(("127.0.0.1", running.port))
        login = json.dumps({"type": "login", "username": "sleepy", "password": "secret1"})
        sleepy.sendall(struct.pack("!I", len(login)) + login.encode())
        back = await sender.push("room_user_on_off_line")
        self.assertTrue(back["online"])
        protocol = next(iter(s for s in running.server.sessions if s.username == "sleepy"))

        dropped: Deferred[None] = Deferred()
        original = sender.stringReceived

        def string_received(data: bytes) -> None:
            payload = json.loads(data)
            if payload.get("type") == "room_user_on_off_line" and not payload["online"]:
                if not dropped.called:
                    dropped.callback(None)
                return
            original(data)

        sender.stringReceived = string_received  # type: ignore[method-assign]
        text = "x" * 4000
        sent = 0

        def send_next(_: object = None) -> None:
            nonlocal sent
            if dropped.called:
                return
            sent += 1
            d = sender.request("send_message", target_type=1, target_id=room, message=text)
            d.addCallbacks(send_next, lambda f: f.trap(ConnectionError))

        for _ in range(16):
            send_next()
        await dropped
        self.assertFalse(protocol.connected)
        # What the server held for it beyond the transport's own buffer
        # never went past the limit.
        self.assertLessEqual(protocol._backlog.queued, limit)
        self.assertGreater(protocol._backlog.queued, 0)
        self.assertGreater(sent, 16)
        reply = await sender.request("send_message", target_type=1, target_id=room, message="ok")
        self.assertEqual(reply["type"], "on_new_message")


class TLSTests(TestCase):
    """
    chatd over TLS, with a throwaway certificate.
    """

    timeout = 60

    async def test_login_over_tls(self) -> None:
        """
        With an ssl: endpoint, a client that trusts the certificate
        registers, logs in and chats over TLS.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_path, cert_path = self.mktemp() + "-key.pem", self.mktemp() + "-cert.pem"
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        with open(cert_path, "wb") as f:
            f.write(cert_pem)

        service = ChatService(
            f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}",
            self.mktemp() + ".sqlite3",
            Limits(),
            reactor,
            admin_socket=socket_path(self),
            install_signals=lambda on_signal: lambda: None,
        )
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        assert service._started is not None
        await service._started
        port = service._port.getHost().port

        endpoint = wrapClientTLS(
            optionsForClientTLS("localhost", Certificate.loadPEM(cert_pem)),
            TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        )
        client = WireClient()
        await connectProtocol(endpoint, client)
        reply = await client.request("register", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "register_successful")
        reply = await client.request("login", username="ncr", password="secret1")
        self.assertEqual(reply["type"], "login_successful")
        created = await client.request("create_room", name="secure")
        reply = await client.request(
            "send_message", target_type=1, target_id=created["room"]["id"], message="over TLS"
        )
        self.assertEqual(reply["message"]["message"], "over TLS")
        await client.close()
