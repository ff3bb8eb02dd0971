"""TokenVerifier against the real dev issuer served over HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from novamind.core.auth import Role, TokenVerifier, bearer_token
from novamind.core.config import CoreSettings
from novamind.core.errors import AuthenticationError, NovamindError, ServiceUnavailableError
from novamind.core.privacy import is_pseudonym, pseudonymise
from novamind.devtools.dev_issuer import DevIssuer, RunningDevIssuer, serve_dev_issuer
from novamind.devtools.net import free_port

PSEUDONYM_KEY = "test-pseudonym-key"
ASSIGNED = "pt_0123456789abcdef0123"


def make_verifier(issuer_url: str, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(issuer=issuer_url, audience="novamind", pseudonym_key=PSEUDONYM_KEY, **kwargs)


@pytest_asyncio.fixture
async def verifier(dev_issuer: RunningDevIssuer) -> AsyncIterator[TokenVerifier]:
    verifier = make_verifier(dev_issuer.url)
    try:
        yield verifier
    finally:
        await verifier.close()


@pytest.fixture
def own_issuer(tmp_path: Path) -> Iterator[RunningDevIssuer]:
    """An issuer for this test alone (for tests that rotate its key or count its requests)."""
    with serve_dev_issuer(tmp_path / "keys") as running:
        yield running


async def rejected(verifier: TokenVerifier, token: str, check: str) -> AuthenticationError:
    """Assert ``token`` is rejected naming ``check``, without echoing the token."""
    with pytest.raises(AuthenticationError) as raised:
        await verifier.verify(token)
    error = raised.value
    assert error.message == check or error.message.startswith(check), error.message
    assert token not in str(error) and token not in repr(error)
    for part in token.split("."):
        if len(part) > 8:
            assert part not in str(error)
    return error


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_a_valid_token_becomes_a_principal_with_roles_and_pseudonymised_scopes(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    token = dev_issuer.mint("dr-ada", ["clinician", "astronaut"], ["MRN-0042", ASSIGNED])

    principal = await verifier.verify(token)

    assert principal.subject == "dr-ada"
    assert principal.roles == frozenset({Role.CLINICIAN})
    assert principal.patient_scopes == frozenset({pseudonymise("MRN-0042", PSEUDONYM_KEY), ASSIGNED})
    assert all(is_pseudonym(scope) for scope in principal.patient_scopes)
    assert "MRN-0042" not in repr(principal)
    assert principal.token == token and token not in repr(principal)


async def test_a_patient_principal_is_known_by_the_pseudonym_of_its_subject(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    token = dev_issuer.mint("MRN-0042", ["patient"], ["MRN-0042"])

    principal = await verifier.verify(token)

    own = pseudonymise("MRN-0042", PSEUDONYM_KEY)
    assert principal.subject == own
    assert principal.roles == frozenset({Role.PATIENT})
    assert principal.patient_scopes == frozenset({own})


async def test_every_role_is_recognised(dev_issuer: RunningDevIssuer, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(dev_issuer.mint("svc-twin", [r.value for r in Role]))

    assert principal.roles == frozenset(Role)
    assert principal.patient_scopes == frozenset()


async def test_authenticate_without_a_token_is_anonymous(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    assert await verifier.authenticate(None, "/novamind.twin.v1.TwinService/GetTwin") is None
    principal = await verifier.authenticate(dev_issuer.mint("ops-1", ["ops"]), "/x/Y")
    assert principal is not None and principal.roles == frozenset({Role.OPS})
    with pytest.raises(AuthenticationError, match="token malformed"):
        await verifier.authenticate("garbage", "/x/Y")


async def test_from_settings_verifies_the_configured_issuer(dev_issuer: RunningDevIssuer) -> None:
    settings = CoreSettings(oidc_issuer=dev_issuer.url, pseudonym_key=SecretStr(PSEUDONYM_KEY))
    verifier = TokenVerifier.from_settings(settings)
    try:
        principal = await verifier.verify(dev_issuer.mint("dr-b", ["clinician"], ["MRN-1"]))
    finally:
        await verifier.close()

    assert principal.patient_scopes == frozenset({pseudonymise("MRN-1", PSEUDONYM_KEY)})


async def test_a_configured_jwks_url_skips_discovery(dev_issuer: RunningDevIssuer) -> None:
    verifier = make_verifier(dev_issuer.url, jwks_url=dev_issuer.jwks_url)
    try:
        assert (await verifier.verify(dev_issuer.mint("dr-c", ["clinician"]))).subject == "dr-c"
    finally:
        await verifier.close()


async def test_an_expired_token_is_rejected(dev_issuer: RunningDevIssuer, verifier: TokenVerifier) -> None:
    await rejected(verifier, dev_issuer.mint("dr-a", ["clinician"], ttl_seconds=-120), "token expired")


async def test_expiry_allows_the_configured_leeway(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    principal = await verifier.verify(dev_issuer.mint("dr-a", ["clinician"], ttl_seconds=-5))

    assert principal.subject == "dr-a"


async def test_a_token_not_yet_valid_is_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    now = time.time()
    await rejected(
        verifier, dev_issuer.mint("dr-a", ["clinician"], not_before=now + 600), "token not yet valid"
    )
    await rejected(
        verifier, dev_issuer.mint("dr-a", ["clinician"], issued_at=now + 600), "token not yet valid"
    )


async def test_a_wrong_audience_is_rejected(dev_issuer: RunningDevIssuer, verifier: TokenVerifier) -> None:
    await rejected(verifier, dev_issuer.mint("dr-a", ["clinician"], audience="billing"), "audience mismatch")


async def test_a_token_from_another_issuer_with_the_same_key_is_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    impostor = DevIssuer(dev_issuer.issuer.key_dir, "http://127.0.0.1:1/other-issuer")

    await rejected(verifier, impostor.mint("dr-a", ["clinician"]), "issuer mismatch")


async def test_missing_required_claims_are_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    for claim in ("exp", "iat", "sub", "aud", "iss"):
        token = dev_issuer.mint("dr-a", ["clinician"], extra_claims={claim: None})
        await rejected(verifier, token, f"required claim '{claim}' missing")


async def test_malformed_claims_are_rejected(dev_issuer: RunningDevIssuer, verifier: TokenVerifier) -> None:
    await rejected(
        verifier, dev_issuer.mint("dr-a", [], extra_claims={"roles": {"a": 1}}), "roles claim malformed"
    )
    await rejected(
        verifier,
        dev_issuer.mint("dr-a", ["clinician"], extra_claims={"patients": "MRN-1"}),
        "patients claim malformed",
    )
    await rejected(verifier, dev_issuer.mint("", ["clinician"]), "subject claim invalid")


@pytest.mark.parametrize(("alg", "digest"), [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)])
async def test_symmetric_algorithms_are_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier, alg: str, digest: Callable[..., Any]
) -> None:
    claims = claims_of(dev_issuer.mint("dr-a", ["clinician"]))
    kid = dev_issuer.issuer.kid

    shared_secret = jwt.encode(claims, "s" * 64, algorithm=alg, headers={"kid": kid})
    await rejected(verifier, shared_secret, "algorithm not allowed")

    # The classic key-confusion attack: HMAC keyed with the issuer's published public key.
    public_pem = (
        serialization.load_pem_private_key((dev_issuer.issuer.key_dir / "signing-key.pem").read_bytes(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = unsigned_token({"alg": alg, "kid": kid, "typ": "JWT"}, claims)[:-1]
    confused = signing_input + "." + b64url(hmac.new(public_pem, signing_input.encode(), digest).digest())
    await rejected(verifier, confused, "algorithm not allowed")


async def test_alg_none_is_rejected(dev_issuer: RunningDevIssuer, verifier: TokenVerifier) -> None:
    claims = claims_of(dev_issuer.mint("dr-a", ["clinician"]))

    for alg in ("none", "None", "NONE"):
        token = unsigned_token({"alg": alg, "kid": dev_issuer.issuer.kid}, claims)
        await rejected(verifier, token, "algorithm not allowed")


async def test_a_tampered_signature_or_payload_is_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    token = dev_issuer.mint("dr-a", ["clinician"], ["MRN-1"])
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    await rejected(verifier, f"{header}.{payload}.{flipped}", "signature invalid")

    claims = claims_of(token)
    claims["patients"] = ["MRN-1", "MRN-2"]
    forged_payload = b64url(json.dumps(claims).encode())
    await rejected(verifier, f"{header}.{forged_payload}.{signature}", "signature invalid")


async def test_a_token_signed_by_an_unpublished_key_is_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    claims = claims_of(dev_issuer.mint("dr-a", ["clinician"]))
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    # Claiming the issuer's kid: the published key does not match the signature.
    spoofed = jwt.encode(claims, rogue, algorithm="RS256", headers={"kid": dev_issuer.issuer.kid})
    await rejected(verifier, spoofed, "signature invalid")
    unknown = jwt.encode(claims, rogue, algorithm="RS256", headers={"kid": "rogue-key"})
    await rejected(verifier, unknown, "unknown signing key")


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9", "!!!.???.###", "e30.e30.", "bm90IGpzb24.e30.c2ln"],
)
async def test_malformed_tokens_are_rejected(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        await verifier.verify(token)
    assert raised.value.message in {"token malformed", "algorithm not allowed (only RS256)"}


async def test_a_token_without_a_key_id_is_rejected(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier
) -> None:
    token = dev_issuer.mint("dr-a", ["clinician"])
    _header, payload, signature = token.split(".")
    no_kid = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())

    await rejected(verifier, f"{no_kid}.{payload}.{signature}", "token has no key id")


async def test_a_rotated_issuer_key_is_picked_up_by_refreshing_the_jwks(own_issuer: RunningDevIssuer) -> None:
    verifier = make_verifier(own_issuer.url)
    try:
        before = own_issuer.mint("dr-a", ["clinician"])
        assert (await verifier.verify(before)).subject == "dr-a"
        assert own_issuer.issuer.jwks_requests == 1

        old_kid = own_issuer.issuer.kid
        new_kid = own_issuer.issuer.rotate_key(keep_previous=False)
        assert new_kid != old_kid
        after = own_issuer.mint("dr-b", ["clinician"])

        assert (await verifier.verify(after)).subject == "dr-b"
        assert own_issuer.issuer.jwks_requests == 2
        # The refreshed JWKS no longer holds the retired key.
        await rejected(verifier, before, "unknown signing key")
        assert own_issuer.issuer.jwks_requests == 2
    finally:
        await verifier.close()


async def test_a_previous_key_kept_in_the_jwks_still_verifies(own_issuer: RunningDevIssuer) -> None:
    verifier = make_verifier(own_issuer.url, jwks_refresh_cooldown_seconds=0.0)
    try:
        before = own_issuer.mint("dr-a", ["clinician"])
        await verifier.verify(before)
        own_issuer.issuer.rotate_key(keep_previous=True)

        assert (await verifier.verify(own_issuer.mint("dr-b", ["clinician"]))).subject == "dr-b"
        assert (await verifier.verify(before)).subject == "dr-a"
    finally:
        await verifier.close()


async def test_a_flood_of_unknown_key_ids_refreshes_the_jwks_at_most_once(
    own_issuer: RunningDevIssuer,
) -> None:
    verifier = make_verifier(own_issuer.url, jwks_refresh_cooldown_seconds=60.0)
    claims = claims_of(own_issuer.mint("dr-a", ["clinician"]))
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = [
        jwt.encode(claims, rogue, algorithm="RS256", headers={"kid": f"made-up-{i}"}) for i in range(50)
    ]
    try:
        concurrent = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
        sequential = [await asyncio.gather(verifier.verify(t), return_exceptions=True) for t in tokens]
    finally:
        await verifier.close()

    results = [*concurrent, *(r for (r,) in sequential)]
    assert len(results) == 100
    assert all(isinstance(r, AuthenticationError) and r.message == "unknown signing key" for r in results)
    # One fetch to start, at most one forced refresh for the whole flood.
    assert own_issuer.issuer.jwks_requests <= 2


async def test_concurrent_first_verifications_fetch_the_jwks_once(own_issuer: RunningDevIssuer) -> None:
    verifier = make_verifier(own_issuer.url)
    tokens = [own_issuer.mint(f"dr-{i}", ["clinician"]) for i in range(20)]
    try:
        principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    finally:
        await verifier.close()

    assert [p.subject for p in principals] == [f"dr-{i}" for i in range(20)]
    assert own_issuer.issuer.jwks_requests == 1


async def test_an_unreachable_issuer_is_service_unavailable(dev_issuer: RunningDevIssuer) -> None:
    port = free_port()  # nothing listens here
    verifier = make_verifier(f"http://127.0.0.1:{port}", http_timeout_seconds=1.0)
    token = dev_issuer.mint("dr-a", ["clinician"])
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailableError, match="identity provider unreachable") as raised:
            await verifier.verify(token)
    finally:
        await verifier.close()

    assert time.monotonic() - started < 5
    assert token not in str(raised.value)
    assert raised.value.retryable


async def test_an_issuer_that_never_answers_times_out(dev_issuer: RunningDevIssuer) -> None:
    # A listening socket that never accepts: the connection completes, no response ever comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        verifier = make_verifier(f"http://127.0.0.1:{port}", http_timeout_seconds=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(ServiceUnavailableError, match="identity provider unreachable"):
                await verifier.verify(dev_issuer.mint("dr-a", ["clinician"]))
        finally:
            await verifier.close()
        elapsed = time.monotonic() - started

    assert elapsed < 3


async def test_cached_keys_keep_working_while_the_issuer_is_down(tmp_path: Path) -> None:
    with serve_dev_issuer(tmp_path / "keys") as running:
        verifier = make_verifier(running.url, jwks_cache_seconds=0.0, http_timeout_seconds=0.5)
        token = running.mint("dr-a", ["clinician"])
        await verifier.verify(token)
    try:
        # The issuer is gone and the cache is stale: the known key still decides.
        assert (await verifier.verify(token)).subject == "dr-a"
        rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        unknown = jwt.encode(claims_of(token), rogue, algorithm="RS256", headers={"kid": "new-key"})
        with pytest.raises(ServiceUnavailableError):
            await verifier.verify(unknown)
    finally:
        await verifier.close()


async def test_failures_never_log_the_token(
    dev_issuer: RunningDevIssuer, verifier: TokenVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [
        dev_issuer.mint("dr-a", ["clinician"], ttl_seconds=-600),
        dev_issuer.mint("dr-a", ["clinician"], audience="other"),
        dev_issuer.mint("dr-a", ["clinician"]) + "x",
    ]
    for token in tokens:
        with pytest.raises(NovamindError):
            await verifier.verify(token)

    for token in tokens:
        signature = token.rsplit(".", 1)[1]
        assert signature not in caplog.text


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("   ", None), ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  xyz ", "xyz")],
)
def test_bearer_token_extracts_the_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "Token abc", "Bearer a b", "abc"]
)
def test_bearer_token_rejects_other_schemes(header: str) -> None:
    with pytest.raises(AuthenticationError, match="authorization header malformed") as raised:
        bearer_token(header)
    assert "dXNlcjpwdw" not in str(raised.value)
