"""Envelope encryption: round trips, tamper and context detection, key rotation, key settings."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from novamind.core.config import CoreSettings, Environment
from novamind.core.crypto import (
    DecryptionError,
    EnvelopeCipher,
    KeyConfigurationError,
    KeyEncryptionKey,
    KeyRing,
    LocalKeyEncryptionKey,
    UnknownKeyError,
    generate_key_line,
    parse_key_lines,
)
from novamind.core.errors import NovamindError

PLAINTEXT = b"PHQ-9 item 9: several days"
CONTEXT = b"pt_0123456789abcdef0123"


def kek(key_id: str) -> LocalKeyEncryptionKey:
    return LocalKeyEncryptionKey(key_id, os.urandom(32))


class CountingKek(LocalKeyEncryptionKey):
    """A real local KEK that counts how often it wraps and unwraps."""

    def __init__(self, key_id: str, key: bytes) -> None:
        super().__init__(key_id, key)
        self.wraps = 0
        self.unwraps = 0

    def wrap(self, data_key: bytes) -> bytes:
        self.wraps += 1
        return super().wrap(data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        self.unwraps += 1
        return super().unwrap(wrapped)


@pytest.fixture
def cipher() -> EnvelopeCipher:
    return EnvelopeCipher(KeyRing([kek("k1")], "k1"))


def test_round_trip_with_and_without_context(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT, context=CONTEXT)

    assert PLAINTEXT not in blob
    assert cipher.decrypt(blob, context=CONTEXT) == PLAINTEXT
    assert cipher.decrypt(cipher.encrypt(b"")) == b""
    assert EnvelopeCipher.key_id_of(blob) == "k1"


def test_each_encryption_uses_a_fresh_nonce(cipher: EnvelopeCipher) -> None:
    assert cipher.encrypt(PLAINTEXT) != cipher.encrypt(PLAINTEXT)


def test_json_round_trip(cipher: EnvelopeCipher) -> None:
    value = {"medications": [{"name": "sertraline", "dose_mg": 50}], "note": "ünïcode"}

    blob = cipher.encrypt_json(value, context=CONTEXT)

    assert cipher.decrypt_json(blob, context=CONTEXT) == value


def test_a_blob_that_is_not_json_fails_decrypt_json(cipher: EnvelopeCipher) -> None:
    with pytest.raises(DecryptionError, match="not JSON"):
        cipher.decrypt_json(cipher.encrypt(b"\xff\xfe not json"))


def test_tampering_with_any_byte_is_detected(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT, context=CONTEXT)

    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(NovamindError) as raised:
            cipher.decrypt(bytes(tampered), context=CONTEXT)
        assert isinstance(raised.value, (DecryptionError, UnknownKeyError)), index
        assert PLAINTEXT.decode() not in str(raised.value)


def test_truncated_and_foreign_blobs_are_rejected(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT)

    for length in (0, 1, 3, 10, len(blob) - 17):
        with pytest.raises(DecryptionError):
            cipher.decrypt(blob[:length])
    with pytest.raises(DecryptionError, match="bad magic"):
        cipher.decrypt(b"plain text that was never encrypted")


def test_wrong_context_is_rejected(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT, context=CONTEXT)

    with pytest.raises(DecryptionError, match="context differs"):
        cipher.decrypt(blob, context=b"pt_ffffffffffffffffffff")
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob)


def test_unknown_key_id_names_the_id(cipher: EnvelopeCipher) -> None:
    other = EnvelopeCipher(KeyRing([kek("k9")], "k9"))
    blob = other.encrypt(PLAINTEXT)

    with pytest.raises(UnknownKeyError, match="'k9'") as raised:
        cipher.decrypt(blob)
    assert raised.value.code.value == "NOT_FOUND"
    with pytest.raises(UnknownKeyError, match="'nope'"):
        cipher.keyring.get("nope")


def test_a_key_with_the_right_id_but_other_material_does_not_decrypt() -> None:
    blob = EnvelopeCipher(KeyRing([kek("k1")], "k1")).encrypt(PLAINTEXT)
    impostor = EnvelopeCipher(KeyRing([kek("k1")], "k1"))

    with pytest.raises(DecryptionError, match="does not unwrap under key 'k1'"):
        impostor.decrypt(blob)


def test_rotation_rewrap_moves_blobs_to_the_active_key() -> None:
    k1, k2 = kek("k1"), kek("k2")
    old_cipher = EnvelopeCipher(KeyRing([k1], "k1"))
    blob = old_cipher.encrypt(PLAINTEXT, context=CONTEXT)
    untouched = old_cipher.encrypt(b"never rewrapped", context=CONTEXT)

    rotating = EnvelopeCipher(KeyRing([k1, k2], "k2"))
    rewrapped = rotating.rewrap(blob)

    assert EnvelopeCipher.key_id_of(rewrapped) == "k2"
    assert rotating.decrypt(rewrapped, context=CONTEXT) == PLAINTEXT
    # The data ciphertext is not re-encrypted: only the key id and wrapped key change.
    assert rewrapped.endswith(blob[-(len(PLAINTEXT) + 16 + 12) :])
    assert rotating.rewrap(rewrapped) == rewrapped
    assert EnvelopeCipher.key_id_of(rotating.encrypt(b"new")) == "k2"

    retired = EnvelopeCipher(KeyRing([k2], "k2"))
    assert retired.decrypt(rewrapped, context=CONTEXT) == PLAINTEXT
    with pytest.raises(UnknownKeyError, match="'k1'"):
        retired.decrypt(untouched, context=CONTEXT)


def test_rewrap_still_rejects_a_wrong_context_afterwards() -> None:
    k1, k2 = kek("k1"), kek("k2")
    blob = EnvelopeCipher(KeyRing([k1], "k1")).encrypt(PLAINTEXT, context=CONTEXT)

    rewrapped = EnvelopeCipher(KeyRing([k1, k2], "k2")).rewrap(blob)

    with pytest.raises(DecryptionError):
        EnvelopeCipher(KeyRing([k2], "k2")).decrypt(rewrapped, context=b"other")


def test_bulk_encryption_reuses_and_caches_data_keys() -> None:
    counting = CountingKek("k1", os.urandom(32))
    cipher = EnvelopeCipher(KeyRing([counting], "k1"), data_key_max_messages=4096)
    payloads = [os.urandom(16) for _ in range(10_000)]

    blobs = [cipher.encrypt(p, context=CONTEXT) for p in payloads]
    fresh = EnvelopeCipher(KeyRing([counting], "k1"))
    decrypted = [fresh.decrypt(b, context=CONTEXT) for b in blobs]

    assert decrypted == payloads
    assert counting.wraps == 3  # 10,000 messages at most 4,096 per data key
    assert counting.unwraps == 3  # one unwrap per distinct data key, then the LRU cache


def test_data_keys_are_not_reused_beyond_their_message_bound() -> None:
    cipher = EnvelopeCipher(KeyRing([kek("k1")], "k1"), data_key_max_messages=2)

    wrapped_keys = {cipher.encrypt(b"x")[: -(1 + 16 + 12)] for _ in range(6)}

    assert len(wrapped_keys) == 3


def test_keyring_requires_the_active_key_and_unique_ids() -> None:
    with pytest.raises(KeyConfigurationError, match="active key id 'k2' is not among the configured keys"):
        KeyRing([kek("k1")], "k2")
    with pytest.raises(KeyConfigurationError, match="configured twice"):
        KeyRing([kek("k1"), kek("k1")], "k1")


def test_local_kek_is_a_key_encryption_key_and_checks_its_key() -> None:
    assert isinstance(kek("k1"), KeyEncryptionKey)
    with pytest.raises(KeyConfigurationError, match="must be 32 bytes, got 16"):
        LocalKeyEncryptionKey("short", os.urandom(16))
    with pytest.raises(KeyConfigurationError, match="key id"):
        LocalKeyEncryptionKey("bad id:", os.urandom(32))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def settings(keys: str, active: str, environment: Environment = Environment.DEVELOPMENT) -> CoreSettings:
    return CoreSettings(
        encryption_keys=SecretStr(keys), encryption_active_key=active, environment=environment
    )


def test_key_lines_parse_with_commas_or_newlines() -> None:
    a, b = os.urandom(32), os.urandom(32)

    ring = KeyRing.from_settings(settings(f"2025-01:{b64(a)},\n 2025-07:{b64(b)}\n", "2025-07"))

    assert ring.key_ids == ("2025-01", "2025-07")
    assert ring.active_key_id == "2025-07"
    blob = EnvelopeCipher(ring).encrypt(PLAINTEXT)
    assert (
        EnvelopeCipher(KeyRing([LocalKeyEncryptionKey("2025-07", b)], "2025-07")).decrypt(blob) == PLAINTEXT
    )


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ("", "k1", "no encryption keys"),
        ("k1", "k1", "entry 1 of encryption_keys is not 'key_id:base64key'"),
        (f"k1:{b64(bytes(32))},k2:", "k1", "entry 2 of encryption_keys"),
        ("k1:not*base64!", "k1", "key 'k1' is not valid base64"),
        (f"k1:{b64(bytes(16))}", "k1", "key 'k1' must be 32 bytes, got 16"),
        (f"k1:{b64(bytes(32))},k1:{b64(bytes(32))}", "k1", "key id 'k1' is configured twice"),
        (f"k1:{b64(bytes(32))}", "k2", "active key id 'k2' is not among the configured keys"),
        (f"bad/id:{b64(bytes(32))}", "bad/id", "a key id must be"),
    ],
)
def test_malformed_key_settings_are_refused_clearly(keys: str, active: str, message: str) -> None:
    with pytest.raises(KeyConfigurationError, match=message) as raised:
        KeyRing.from_settings(settings(keys, active))
    if "base64" in keys or ":" in keys:
        secret = keys.partition(":")[2].partition(",")[0]
        assert not secret or secret not in str(raised.value)


def test_production_refuses_the_development_key() -> None:
    defaults = CoreSettings()
    with pytest.raises(
        KeyConfigurationError, match="development encryption key must not be used in production"
    ):
        KeyRing.from_settings(defaults.model_copy(update={"environment": Environment.PRODUCTION}))

    dev_line = defaults.encryption_keys.get_secret_value()
    new_line = generate_key_line("2025-06")
    with pytest.raises(KeyConfigurationError, match="development encryption key"):
        KeyRing.from_settings(settings(f"{dev_line},{new_line}", "2025-06", Environment.PRODUCTION))

    ring = KeyRing.from_settings(settings(new_line, "2025-06", Environment.PRODUCTION))
    assert ring.active_key_id == "2025-06"


def test_development_default_works_out_of_the_box() -> None:
    ring = KeyRing.from_settings(CoreSettings())
    cipher = EnvelopeCipher(ring)

    assert cipher.decrypt(cipher.encrypt(PLAINTEXT)) == PLAINTEXT


def test_generated_key_lines_parse_and_differ() -> None:
    first, second = generate_key_line("k1"), generate_key_line("k1")

    assert first != second
    (parsed,) = parse_key_lines(first)
    assert parsed.key_id == "k1"


def test_new_key_command_prints_a_key_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "novamind.core.crypto", "new-key", "2025-09"],
        capture_output=True,
        text=True,
        check=True,
    )

    (parsed,) = parse_key_lines(result.stdout)
    assert parsed.key_id == "2025-09"
