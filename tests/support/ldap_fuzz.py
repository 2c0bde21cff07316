"""Malformed LDAP messages for fuzzing a running server (the CI fuzz test and bench/hostile.py share them).

Mutations of valid messages (byte flips, inserted/deleted bytes, wrong inner lengths) re-framed in a sound
envelope, which the server must answer with protocolError and go on; frame-level garbage (truncations,
random or indefinite lengths, random bytes), after which it may hang up. ``fuzz`` drives a server with both.
"""

from __future__ import annotations

import random
import socket
import threading

from sds_registry.ldap import codec, responses
from tests.support.ldap import search_message


def valid_messages() -> list[bytes]:
    def msg(mid: int, tag: int, body: bytes, controls: bytes = b"") -> bytes:
        return codec.tlv(b"\x30", codec.encode_int(mid) + codec.tlv(bytes((tag,)), body) + controls)

    flt = codec.tlv(
        b"\xa0",
        codec.tlv(b"\xa3", codec.octets("nhsIDCode") + codec.octets("T99999"))
        + codec.tlv(b"\xa2", codec.tlv(b"\x87", b"objectClass"))
        + codec.tlv(b"\xa4", codec.octets("cn") + codec.tlv(b"\x30", b"\x80\x01a\x81\x01b\x82\x01c"))
        + codec.tlv(b"\xa9", b"\x81\x01x\x82\x02cn\x83\x01v\x84\x01\xff"),
    )
    search = (
        codec.octets("ou=services,o=nhs")
        + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00"
        + flt
        + codec.tlv(b"\x30", codec.octets("nhsMHSEndPoint") + codec.octets("*"))
    )
    paged = responses.encode_controls([responses.paged_control(5, b"")])
    return [
        search_message(3),
        msg(4, 0x63, search),
        msg(5, 0x63, search, paged),
        msg(6, 0x60, b"\x02\x01\x03" + codec.octets("") + b"\x80\x00"),
        msg(7, 0x77, codec.tlv(b"\x80", b"1.3.6.1.4.1.4203.1.11.3")),
        msg(8, 0x6E, codec.octets("cn=a,o=nhs") + codec.tlv(b"\x30", codec.octets("cn") + codec.octets("a"))),
        msg(9, 0x68, codec.octets("cn=a,o=nhs") + codec.tlv(b"\x30", b"")),
    ]


def mutate(rng: random.Random, base: bytes) -> bytes:
    buf = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf)) if buf else 0
        kind = rng.random()
        if kind < 0.4 and buf:
            buf[i] = rng.randrange(256)
        elif kind < 0.6:
            buf[i:i] = rng.randbytes(rng.randint(1, 3))
        elif kind < 0.8 and buf:
            del buf[i]
        else:
            buf[i:i] = bytes([rng.choice([0x80, 0x81, 0x82, 0x84, 0x7F, 0xFF, 0x00])])
    return bytes(buf)


def mutant(rng: random.Random, valid: list[bytes], message_id: int) -> bytes:
    """A sound envelope (SEQUENCE, messageID) around a mutated protocolOp and controls."""
    base = rng.choice(valid)
    _, s, _ = header(base)
    id_len = base[s + 1]
    op = base[s + 2 + id_len :]
    return codec.tlv(b"\x30", codec.encode_int(message_id) + mutate(rng, op))


def header(data: bytes) -> tuple[int, int, int]:
    n = data[1]
    if n < 0x80:
        return data[0], 2, 2 + n
    k = n & 0x7F
    return data[0], 2 + k, 2 + k + int.from_bytes(data[2 : 2 + k], "big")


def frame_garbage(rng: random.Random, valid: list[bytes]) -> bytes:
    choice = rng.random()
    base = rng.choice(valid)
    if choice < 0.3:
        return base[: rng.randrange(1, len(base))] + rng.randbytes(rng.randint(0, 8))  # truncation + junk
    if choice < 0.6:
        n = rng.choice([0x80, 0x85, 0x89, 0xFF, rng.randrange(256)])
        return b"\x30" + bytes([n]) + rng.randbytes(rng.randint(0, 16))  # random/indefinite length
    if choice < 0.8:
        return b"\x30\x84" + rng.randbytes(4) + base  # random long length
    return rng.randbytes(rng.randint(1, 40))


class Drain(threading.Thread):
    """Reads the server's answers until it closes the connection; counts the requests answered."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.answered = 0

    def run(self) -> None:
        buf = b""
        try:
            while chunk := self.sock.recv(1 << 16):
                buf += chunk
                messages, used = codec.split_messages(buf, 1 << 24)
                buf = buf[used:]
                # every response but a SearchResultEntry ends one request (a notice ends the connection)
                self.answered += sum(1 for m in messages if op_tag(m) != 0x64)
        except OSError:
            pass


def op_tag(message: bytes) -> int:
    _, s, _ = header(message)
    return message[s + 2 + message[s + 1]]


def fuzz(addr: tuple[str, int], total: int, rng: random.Random, batch: int = 500, garbage_every: int = 50) -> int:
    """Send at least ``total`` malformed messages: batches of mutants pipelined on one connection, then
    frame-level garbage on a connection each. Returns how many the server demonstrably processed; fails when
    it stalls on a connection for 30 s."""
    valid = valid_messages()
    sent = 0
    while sent < total:
        sock = socket.create_connection(addr, timeout=10)
        drain = Drain(sock)
        drain.start()
        payload = b"".join(mutant(rng, valid, 1 + i) for i in range(batch))
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server hung up mid-batch (a mutant it could not frame): that is allowed
        drain.join(30)
        assert not drain.is_alive(), "server stalled on a connection"
        sock.close()
        sent += max(drain.answered, 1)  # a connection cut at once still delivered one bad message
        for _ in range(batch // garbage_every):
            with socket.create_connection(addr, timeout=10) as g:
                try:
                    g.sendall(frame_garbage(rng, valid))
                    g.shutdown(socket.SHUT_WR)
                    while g.recv(1 << 16):
                        pass
                except OSError:
                    pass
            sent += 1
    return sent
