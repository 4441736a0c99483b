"""age v1 encryption to X25519 recipients, as pull-based streams (https://age-encryption.org/v1).

Parts are encrypted and decrypted as they flow, chunk by chunk, so nothing is held whole. The
output is a standard age file: `age -d -i key.txt` decrypts it. The primitives come from
`cryptography` (X25519, HKDF-SHA256, ChaCha20-Poly1305, HMAC); only the framing is written here,
because pyrage's streaming calls push into a writer under the GIL, which a pipeline that pulls
bytes from tar through zstd into an upload cannot use at speed.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
from collections import deque
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tma_ops.errors import IntegrityError, InventoryError
from tma_ops.streams import CHUNK, Readable

VERSION_LINE = b"age-encryption.org/v1\n"
X25519_INFO = b"age-encryption.org/v1/X25519"
PAYLOAD_CHUNK = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK = PAYLOAD_CHUNK + TAG_SIZE
NONCE_SIZE = 16
SECRET_KEY_LINE = re.compile(r"^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$")


# Keys


def recipient_key(recipient: str) -> X25519PublicKey:
    """The X25519 public key of an `age1...` recipient string."""
    return X25519PublicKey.from_public_bytes(_bech32_decode("age", recipient))


def identity_key(secret: str) -> X25519PrivateKey:
    """The X25519 private key of an `AGE-SECRET-KEY-1...` line."""
    return X25519PrivateKey.from_private_bytes(_bech32_decode("age-secret-key-", secret.lower()))


def read_identities(path: Path) -> list[X25519PrivateKey]:
    """The private keys of an identity file as written by `age-keygen` (comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(
            f"encryption.identity_file: cannot read {path}: {exc.strerror}; "
            "expected the age private key file (age-keygen -o FILE)"
        ) from exc
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not SECRET_KEY_LINE.match(line):
            raise InventoryError(
                f"{path}:{number}: expected an age private key (AGE-SECRET-KEY-1...) or a "
                "'#' comment"
            )
        keys.append(identity_key(line))
    if not keys:
        raise InventoryError(f"{path}: no age private key in this file")
    return keys


# Encryption


class EncryptingReader(io.RawIOBase):
    """Reads plain bytes from source and returns the age file encrypting them."""

    def __init__(self, source: Readable, recipients: Iterable[str]) -> None:
        keys = [recipient_key(r) for r in recipients]
        if not keys:
            raise InventoryError("encryption: expected at least one age recipient")
        file_key = os.urandom(16)
        nonce = os.urandom(NONCE_SIZE)
        # Sealed chunks wait whole in a queue and are joined once per read: no buffer reshuffling.
        self._sealed: deque[bytes] = deque([_header(file_key, keys) + nonce])
        self._ready = len(self._sealed[0])
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._source = source
        self._held = b""
        self._counter = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size and size > 0 else CHUNK
        while self._ready < want and not self._done:
            self._encrypt_more()
        pieces, got = [], 0
        while self._sealed and got < want:
            piece = self._sealed.popleft()
            if got + len(piece) > want:
                self._sealed.appendleft(piece[want - got :])
                piece = piece[: want - got]
            pieces.append(piece)
            got += len(piece)
        self._ready -= got
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _encrypt_more(self) -> None:
        data = self._source.read(CHUNK)
        if not data:
            self._seal(memoryview(self._held), last=True)
            self._done = True
            return
        plain = self._held + data if self._held else data
        # One chunk is always held back: only the last chunk is flagged, so EOF must be seen first.
        whole = (len(plain) - 1) // PAYLOAD_CHUNK
        view = memoryview(plain)
        for index in range(whole):
            start = index * PAYLOAD_CHUNK
            self._seal(view[start : start + PAYLOAD_CHUNK], last=False)
        self._held = bytes(view[whole * PAYLOAD_CHUNK :])
        view.release()

    def _seal(self, chunk: memoryview, *, last: bool) -> None:
        sealed = self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, None)
        self._sealed.append(sealed)
        self._ready += len(sealed)
        self._counter += 1


def _header(file_key: bytes, recipients: list[X25519PublicKey]) -> bytes:
    lines = [VERSION_LINE]
    for recipient in recipients:
        lines.append(_x25519_stanza(file_key, recipient))
    header = b"".join(lines) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, sha256).digest()
    return header + b" " + _b64(mac) + b"\n"


def _x25519_stanza(file_key: bytes, recipient: X25519PublicKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = _raw(ephemeral.public_key())
    shared = ephemeral.exchange(recipient)
    wrap_key = _hkdf(shared, share + _raw(recipient), X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    return b"-> X25519 " + _b64(share) + b"\n" + _wrapped(_b64(body))


# Decryption


class DecryptingReader(io.RawIOBase):
    """Reads an age file from source and returns the plain bytes; damage is an IntegrityError.

    Sealed chunks are opened straight from the source's reads (views, no copies) and each read()
    hands out one opened chunk as it is; only a chunk split between two reads is copied whole.
    """

    def __init__(self, source: Readable, identities: list[X25519PrivateKey], name: str) -> None:
        self._source = source
        self._name = name
        self._buffer = bytearray()
        self._source_ended = False
        file_key = self._unwrap_header(identities)
        nonce = self._take(NONCE_SIZE)
        if len(nonce) < NONCE_SIZE:
            raise self._damaged("truncated before the payload")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        # Sealed bytes not opened yet: at most one chunk, which may turn out to be the last one.
        self._held = bytearray()
        self._opened: deque[bytes] = deque()
        self._done = False
        if self._buffer:  # payload read along with the header
            self._take_in(memoryview(self._buffer))
            self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size and size > 0 else CHUNK
        while not self._opened and not self._done:
            self._open_more()
        if not self._opened:
            return b""
        plain = self._opened.popleft()
        if len(plain) > want:
            self._opened.appendleft(plain[want:])
            return plain[:want]
        return plain

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _open_more(self) -> None:
        data = b"" if self._source_ended else self._source.read(CHUNK)
        if data:
            self._take_in(memoryview(data))
            return
        self._source_ended = True
        self._open_last()

    def _take_in(self, data: memoryview) -> None:
        """Open every chunk of held + data known not to be the last; hold the rest."""
        start = 0
        if self._held:
            start = min(len(data), ENCRYPTED_CHUNK - len(self._held))
            self._held += data[:start]
            if start == len(data):
                return  # nothing follows the held chunk yet: it may be the last one
            self._open(self._held, last=False)
            self._held = bytearray()
        while len(data) - start > ENCRYPTED_CHUNK:
            self._open(data[start : start + ENCRYPTED_CHUNK], last=False)
            start += ENCRYPTED_CHUNK
        self._held += data[start:]

    def _open_last(self) -> None:
        if len(self._held) < TAG_SIZE:
            raise self._damaged("truncated payload")
        plain = self._open(self._held, last=True)
        if not plain and self._counter > 1:
            raise self._damaged("empty final chunk")
        self._held = bytearray()
        self._done = True

    def _open(self, sealed: bytearray | memoryview, *, last: bool) -> bytes:
        try:
            plain = self._aead.decrypt(_chunk_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            what = "truncated or damaged" if last else "damaged"
            raise self._damaged(f"{what} payload chunk {self._counter}") from None
        self._counter += 1
        if plain:
            self._opened.append(plain)
        return plain

    def _unwrap_header(self, identities: list[X25519PrivateKey]) -> bytes:
        if self._line() != VERSION_LINE[:-1]:
            raise self._damaged("not an age v1 file")
        header, file_key = bytearray(VERSION_LINE), None
        while True:
            line = self._line()
            if line.startswith(b"---"):
                break
            header += line + b"\n"
            if line.startswith(b"-> X25519 ") and file_key is None:
                body = self._stanza_body(header)
                file_key = _unwrap_x25519(_unb64(line[10:]), body, identities)
            elif line.startswith(b"-> "):
                self._stanza_body(header)
            else:
                raise self._damaged("malformed header")
        if file_key is None:
            raise IntegrityError(
                f"{self._name}: none of the identity file's keys can decrypt it "
                "(encrypted to other recipients?)"
            )
        mac = hmac.new(_hkdf(file_key, b"", b"header"), bytes(header) + b"---", sha256).digest()
        if not line.startswith(b"--- ") or not hmac.compare_digest(_unb64(line[4:]), mac):
            raise self._damaged("header MAC mismatch")
        return file_key

    def _stanza_body(self, header: bytearray) -> bytes:
        body = b""
        while True:
            line = self._line()
            header += line + b"\n"
            body += line
            if len(line) < 64:
                return _unb64(body)

    def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > 4096 or self._source_ended:
                raise self._damaged("malformed or truncated header")
            self._fill(len(self._buffer) + 256)
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        return line

    def _take(self, count: int) -> bytes:
        self._fill(count)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _fill(self, target: int) -> bool:
        """Read until the buffer holds target bytes or the source ends; False at the end."""
        while len(self._buffer) < target and not self._source_ended:
            data = self._source.read(CHUNK)
            if not data:
                self._source_ended = True
            self._buffer += data
        return len(self._buffer) >= target

    def _damaged(self, what: str) -> IntegrityError:
        return IntegrityError(f"{self._name}: cannot be decrypted: {what}")


def _unwrap_x25519(share: bytes, body: bytes, identities: list[X25519PrivateKey]) -> bytes | None:
    if len(share) != 32 or len(body) != 32:
        return None
    for identity in identities:
        shared = identity.exchange(X25519PublicKey.from_public_bytes(share))
        wrap_key = _hkdf(shared, share + _raw(identity.public_key()), X25519_INFO)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), body, None)
        except InvalidTag:
            continue
    return None


# Encodings


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except ValueError:
        return b""


def _wrapped(text: bytes) -> bytes:
    """Stanza bodies are wrapped at 64 columns; the last line is always shorter (maybe empty)."""
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"".join(line + b"\n" for line in lines)


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_decode(hrp: str, text: str) -> bytes:
    """The 32-byte payload of a bech32 string with the given human-readable part (BIP 173)."""
    text = text.strip()
    wanted_prefix = hrp + "1"
    if text.lower() != text or not text.startswith(wanted_prefix):
        raise InventoryError(f"expected a key starting with {wanted_prefix!r}")
    try:
        values = [BECH32.index(c) for c in text[len(wanted_prefix) :]]
    except ValueError:
        raise InventoryError(f"invalid character in key {text[:12]}…") from None
    if _bech32_polymod(_hrp_expand(hrp) + values) != 1:
        raise InventoryError(f"key {text[:12]}… has a bad checksum (mistyped?)")
    data = _convert_bits(values[:-6])
    if len(data) != 32:
        raise InventoryError(f"key {text[:12]}… does not hold a 32-byte key")
    return data


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check


def _convert_bits(values: list[int]) -> bytes:
    """5-bit groups to bytes; leftover padding bits must be zero."""
    accumulator, bits, out = 0, 0, bytearray()
    for value in values:
        accumulator = (accumulator << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    if bits >= 5 or (accumulator << (8 - bits)) & 0xFF:
        raise InventoryError("key has invalid padding")
    return bytes(out)
