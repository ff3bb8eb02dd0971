"""Envelope encryption of data at rest: AES-256-GCM data keys wrapped by key-encryption keys.

Each blob is encrypted under a random AES-256 *data key*; the data key is stored next to the
ciphertext, wrapped (AES key wrap, RFC 3394) under a *key-encryption key* (KEK) named by its key
id. Rotating the KEK therefore only re-wraps the few bytes of the data key (:meth:`EnvelopeCipher.rewrap`);
the data ciphertext stays as it is.

Blob format, version 1 (all integers big-endian)::

    offset      size  field
    0           2     magic b"NE"
    2           1     format version (1)
    3           1     key id length K (1..255)
    4           K     key id (ASCII)
    4+K         2     wrapped data key length W
    6+K         W     wrapped data key (40 bytes for the local KEK)
    6+K+W       12    AES-GCM nonce
    18+K+W      ...   AES-GCM ciphertext followed by the 16-byte tag

The AES-GCM associated data is ``b"NE" + version + context``: a blob decrypts only with the
context it was encrypted with (twin records use the patient pseudonym), so a ciphertext copied
onto another patient's row fails authentication.

Data keys are reused for a bounded number of messages and time (like the AWS Encryption SDK's
data-key caching) and unwrapped data keys are kept in a small LRU cache, so encrypting or
decrypting thousands of small records costs one wrap/unwrap, not thousands.

Settings: ``NOVAMIND_ENCRYPTION_KEYS="kid1:base64key,kid2:base64key"`` and
``NOVAMIND_ENCRYPTION_ACTIVE_KEY=kid2``. ``python -m novamind.core.crypto new-key KID`` prints a
new key line for the rotation runbook.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import os
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from novamind.core.config import CoreSettings, Environment
from novamind.core.errors import DataProcessingError, NotFoundError, ValidationError

MAGIC = b"NE"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_SETTINGS_FIELD = "encryption_keys"


class DecryptionError(DataProcessingError):
    """A blob could not be decrypted: it was modified, the context differs, or it is not a blob."""


class UnknownKeyError(NotFoundError):
    """No key-encryption key with the requested key id is configured."""


class KeyConfigurationError(ValidationError):
    """The configured encryption keys are malformed or not allowed in this environment."""


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """A key-encryption key: wraps and unwraps data keys (a local key today, a cloud KMS key later)."""

    key_id: str

    def wrap(self, data_key: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


class LocalKeyEncryptionKey:
    """An AES-256 key-encryption key held in process memory (AES key wrap, RFC 3394).

    Raises :class:`KeyConfigurationError` for a malformed key id or a key that is not 32 bytes.
    """

    def __init__(self, key_id: str, key: bytes) -> None:
        _check_key_id(key_id)
        if len(key) != KEY_BYTES:
            raise KeyConfigurationError(
                f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(key)}", field=_SETTINGS_FIELD
            )
        self.key_id = key_id
        self._key = key

    def wrap(self, data_key: bytes) -> bytes:
        """The data key wrapped under this KEK (deterministic: same data key, same bytes)."""
        return aes_key_wrap(self._key, data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key; raises :class:`DecryptionError` if ``wrapped`` was not made by this KEK."""
        try:
            return aes_key_unwrap(self._key, wrapped)
        except (InvalidUnwrap, ValueError):
            raise DecryptionError(f"data key does not unwrap under key {self.key_id!r}") from None

    def __repr__(self) -> str:
        return f"LocalKeyEncryptionKey(key_id={self.key_id!r})"


class KeyRing:
    """The configured KEKs by key id, and the one new data keys are wrapped under."""

    def __init__(self, keys: Iterable[KeyEncryptionKey], active_key_id: str) -> None:
        self._keys: dict[str, KeyEncryptionKey] = {}
        for kek in keys:
            if kek.key_id in self._keys:
                raise KeyConfigurationError(
                    f"key id {kek.key_id!r} is configured twice", field=_SETTINGS_FIELD
                )
            self._keys[kek.key_id] = kek
        if active_key_id not in self._keys:
            known = ", ".join(sorted(self._keys)) or "none"
            raise KeyConfigurationError(
                f"active key id {active_key_id!r} is not among the configured keys ({known})",
                field="encryption_active_key",
            )
        self.active_key_id = active_key_id

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> KeyRing:
        """The key ring of ``settings.encryption_keys`` / ``encryption_active_key``.

        Raises :class:`KeyConfigurationError` for malformed entries, a missing active key id, or
        the development key in production.
        """
        keys = parse_key_lines(settings.encryption_keys.get_secret_value())
        if settings.environment is Environment.PRODUCTION:
            development = {kek.key_id: kek._key for kek in parse_key_lines(_development_key_lines())}
            if any(kek._key in development.values() for kek in keys):
                raise KeyConfigurationError(
                    "the development encryption key must not be used in production; "
                    "set NOVAMIND_ENCRYPTION_KEYS and NOVAMIND_ENCRYPTION_ACTIVE_KEY",
                    field=_SETTINGS_FIELD,
                )
        return cls(keys, settings.encryption_active_key)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def active(self) -> KeyEncryptionKey:
        return self._keys[self.active_key_id]

    def get(self, key_id: str) -> KeyEncryptionKey:
        """The KEK named ``key_id``; raises :class:`UnknownKeyError` naming the id."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"unknown encryption key id {key_id!r}", field="key_id") from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys


@dataclass(frozen=True, slots=True)
class _Envelope:
    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class _DataKey:
    plaintext: bytes = dataclasses.field(repr=False)
    aead: AESGCM = dataclasses.field(repr=False)


@dataclass(slots=True)
class _EncryptionKey:
    key_id: str
    wrapped_key: bytes
    aead: AESGCM
    created: float
    uses: int = 0


class EnvelopeCipher:
    """Encrypts and decrypts blobs with AES-256-GCM data keys wrapped by a :class:`KeyRing`.

    ``data_key_max_messages`` and ``data_key_max_age_seconds`` bound how long one data key is
    reused for encryption; ``unwrapped_key_cache_size`` bounds the LRU cache of unwrapped data keys.
    Safe to share between threads.
    """

    def __init__(
        self,
        keyring: KeyRing,
        *,
        data_key_max_messages: int = 65_536,
        data_key_max_age_seconds: float = 300.0,
        unwrapped_key_cache_size: int = 1024,
    ) -> None:
        self.keyring = keyring
        self._max_messages = data_key_max_messages
        self._max_age = data_key_max_age_seconds
        self._cache_size = unwrapped_key_cache_size
        self._lock = threading.Lock()
        self._encryption_key: _EncryptionKey | None = None
        self._unwrapped: OrderedDict[tuple[str, bytes], _DataKey] = OrderedDict()
        self._rewrapped: OrderedDict[tuple[str, bytes, str], bytes] = OrderedDict()

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """A blob holding ``plaintext``; ``context`` must be given again to decrypt it."""
        key = self._current_encryption_key()
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = key.aead.encrypt(nonce, plaintext, _associated_data(context))
        return _pack(_Envelope(key.key_id, key.wrapped_key, nonce, ciphertext))

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        """The plaintext of ``blob``.

        Raises :class:`DecryptionError` if the blob was modified, is not a blob, or ``context``
        differs from the one it was encrypted with, and :class:`UnknownKeyError` if its KEK is
        not in the key ring.
        """
        envelope = _unpack(blob)
        aead = self._data_key(envelope.key_id, envelope.wrapped_key).aead
        try:
            return aead.decrypt(envelope.nonce, envelope.ciphertext, _associated_data(context))
        except InvalidTag:
            raise DecryptionError(
                "ciphertext failed authentication: the blob was modified or the context differs"
            ) from None

    def rewrap(self, blob: bytes) -> bytes:
        """``blob`` with its data key re-wrapped under the active KEK; the data ciphertext is unchanged.

        A blob already under the active KEK is returned as it is. Raises like :meth:`decrypt`
        when the data key cannot be unwrapped (the ciphertext itself is not checked).
        """
        envelope = _unpack(blob)
        active = self.keyring.active
        if envelope.key_id == active.key_id:
            return blob
        # Blobs that share a data key keep sharing one wrapped form, so the cache still serves them.
        rewrap_key = (envelope.key_id, envelope.wrapped_key, active.key_id)
        with self._lock:
            rewrapped = self._rewrapped.get(rewrap_key)
        if rewrapped is None:
            data_key = self._data_key(envelope.key_id, envelope.wrapped_key)
            rewrapped = active.wrap(data_key.plaintext)
            with self._lock:
                self._remember(active.key_id, rewrapped, data_key)
                self._rewrapped[rewrap_key] = rewrapped
                while len(self._rewrapped) > self._cache_size:
                    self._rewrapped.popitem(last=False)
        return _pack(_Envelope(active.key_id, rewrapped, envelope.nonce, envelope.ciphertext))

    def encrypt_json(self, value: Any, *, context: bytes = b"") -> bytes:
        """:meth:`encrypt` of ``value`` as compact UTF-8 JSON."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return self.encrypt(text.encode(), context=context)

    def decrypt_json(self, blob: bytes, *, context: bytes = b"") -> Any:
        """The JSON value of :meth:`decrypt`; raises :class:`DecryptionError` if it is not JSON."""
        plaintext = self.decrypt(blob, context=context)
        try:
            return json.loads(plaintext)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DecryptionError("decrypted blob is not JSON") from None

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The id of the KEK that wraps ``blob``'s data key; raises :class:`DecryptionError` if malformed."""
        return _unpack(blob).key_id

    def _current_encryption_key(self) -> _EncryptionKey:
        now = time.monotonic()
        active_id = self.keyring.active_key_id
        with self._lock:
            key = self._encryption_key
            if (
                key is None
                or key.key_id != active_id
                or key.uses >= self._max_messages
                or now - key.created >= self._max_age
            ):
                data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
                wrapped = self.keyring.active.wrap(data_key)
                key = _EncryptionKey(active_id, wrapped, AESGCM(data_key), now)
                self._encryption_key = key
                self._remember(active_id, wrapped, _DataKey(data_key, key.aead))
            key.uses += 1
            return key

    def _data_key(self, key_id: str, wrapped: bytes) -> _DataKey:
        cache_key = (key_id, wrapped)
        with self._lock:
            cached = self._unwrapped.get(cache_key)
            if cached is not None:
                self._unwrapped.move_to_end(cache_key)
                return cached
        plaintext = self.keyring.get(key_id).unwrap(wrapped)
        if len(plaintext) != KEY_BYTES:
            raise DecryptionError(f"data key unwrapped under key {key_id!r} has the wrong length")
        data_key = _DataKey(plaintext, AESGCM(plaintext))
        with self._lock:
            self._remember(key_id, wrapped, data_key)
        return data_key

    def _remember(self, key_id: str, wrapped: bytes, data_key: _DataKey) -> None:
        # Caller holds self._lock.
        self._unwrapped[(key_id, wrapped)] = data_key
        self._unwrapped.move_to_end((key_id, wrapped))
        while len(self._unwrapped) > self._cache_size:
            self._unwrapped.popitem(last=False)


def parse_key_lines(text: str) -> list[LocalKeyEncryptionKey]:
    """Local KEKs from ``"kid1:base64key,kid2:base64key"`` (commas, newlines or spaces separate entries).

    Raises :class:`KeyConfigurationError` naming the entry (by position or key id, never the key).
    """
    entries = [entry for entry in re.split(r"[\s,]+", text.strip()) if entry]
    if not entries:
        raise KeyConfigurationError("no encryption keys are configured", field=_SETTINGS_FIELD)
    keys: list[LocalKeyEncryptionKey] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        key_id, separator, encoded = entry.partition(":")
        if not separator or not key_id or not encoded:
            raise KeyConfigurationError(
                f"entry {position} of encryption_keys is not 'key_id:base64key'", field=_SETTINGS_FIELD
            )
        _check_key_id(key_id)
        if key_id in seen:
            raise KeyConfigurationError(f"key id {key_id!r} is configured twice", field=_SETTINGS_FIELD)
        seen.add(key_id)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyConfigurationError(
                f"key {key_id!r} is not valid base64", field=_SETTINGS_FIELD
            ) from None
        keys.append(LocalKeyEncryptionKey(key_id, key))
    return keys


def generate_key_line(key_id: str) -> str:
    """A new ``"key_id:base64key"`` entry with a random 256-bit key (for key rotation)."""
    _check_key_id(key_id)
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def _development_key_lines() -> str:
    default = CoreSettings.model_fields["encryption_keys"].default
    return str(default.get_secret_value())


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyConfigurationError(
            "a key id must be 1 to 255 characters from A-Z a-z 0-9 . _ -", field=_SETTINGS_FIELD
        )


def _associated_data(context: bytes) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION]) + context


def _pack(envelope: _Envelope) -> bytes:
    key_id = envelope.key_id.encode("ascii")
    return b"".join(
        (
            MAGIC,
            bytes([FORMAT_VERSION, len(key_id)]),
            key_id,
            struct.pack(">H", len(envelope.wrapped_key)),
            envelope.wrapped_key,
            envelope.nonce,
            envelope.ciphertext,
        )
    )


def _unpack(blob: bytes) -> _Envelope:
    view = bytes(blob)
    if len(view) < 4 or view[:2] != MAGIC:
        raise DecryptionError("not an encrypted blob (bad magic)")
    if view[2] != FORMAT_VERSION:
        raise DecryptionError(f"unsupported blob format version {view[2]}")
    key_id_end = 4 + view[3]
    if view[3] == 0 or len(view) < key_id_end + 2:
        raise DecryptionError("encrypted blob is truncated (key id)")
    try:
        key_id = view[4:key_id_end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("encrypted blob has a malformed key id") from None
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise DecryptionError("encrypted blob has a malformed key id")
    (wrapped_length,) = struct.unpack(">H", view[key_id_end : key_id_end + 2])
    wrapped_end = key_id_end + 2 + wrapped_length
    nonce_end = wrapped_end + NONCE_BYTES
    if wrapped_length == 0 or len(view) < nonce_end + TAG_BYTES:
        raise DecryptionError("encrypted blob is truncated")
    return _Envelope(
        key_id=key_id,
        wrapped_key=view[key_id_end + 2 : wrapped_end],
        nonce=view[wrapped_end:nonce_end],
        ciphertext=view[nonce_end:],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m novamind.core.crypto new-key KEY_ID``: print a new ``key_id:base64key`` entry."""
    parser = argparse.ArgumentParser(
        prog="python -m novamind.core.crypto", description="Novamind envelope-encryption key tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new_key = commands.add_parser("new-key", help="print a new key entry for NOVAMIND_ENCRYPTION_KEYS")
    new_key.add_argument("key_id", help="the new key's id, e.g. 2025-06")
    args = parser.parse_args(argv)
    try:
        print(generate_key_line(args.key_id))
    except KeyConfigurationError as exc:
        parser.error(exc.message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
