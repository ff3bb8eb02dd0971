"""Bearer-token authentication: RS256 JWTs from an OpenID issuer, roles and patient scopes.

:class:`TokenVerifier` accepts only RS256 tokens signed by a key in the issuer's JWKS (discovered
from ``<issuer>/.well-known/openid-configuration`` unless a JWKS URL is configured) and checks
``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` with a small leeway. The JWKS is cached; a token
whose ``kid`` is not in the cache triggers one refresh, and such forced refreshes happen at most
once per cooldown, so a flood of tokens with made-up key ids cannot hammer the issuer.

Claims become a :class:`~novamind.core.rpc.Principal`:

* ``sub`` → ``subject`` (a staff or service id; for a principal with the patient role, the
  pseudonym of ``sub``, so a patient's identity never travels further as plain text);
* ``roles`` → the :class:`Role` values among them (unknown roles are ignored);
* ``patients`` → ``patient_scopes``, each entry pseudonymised with the pseudonym key unless it
  already is a pseudonym.

Failures of the token raise :class:`~novamind.core.errors.AuthenticationError` naming the failed
check ("token expired", "audience mismatch", "unknown signing key", "signature invalid"); the
token itself never appears in a message or log. When the issuer cannot be reached and no cached
key can decide, verification raises :class:`~novamind.core.errors.ServiceUnavailableError`
instead: the token may be valid, so the caller is told to retry rather than that it is rejected.
Every HTTP call to the issuer is bounded by ``http_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import httpx
import jwt

from novamind.core.config import CoreSettings
from novamind.core.errors import AuthenticationError, ServiceUnavailableError
from novamind.core.privacy import is_pseudonym, pseudonymise
from novamind.core.rpc import Principal

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class Role(enum.StrEnum):
    """The roles a token may grant."""

    CLINICIAN = "clinician"
    PATIENT = "patient"
    OPS = "ops"
    SERVICE = "service"


class TokenVerifier:
    """Verifies RS256 bearer tokens against an OpenID issuer's JWKS (an ``rpc.Authenticator``).

    ``jwks_cache_seconds`` is how long a fetched JWKS is used before it is fetched again;
    ``jwks_refresh_cooldown_seconds`` is the least time between two refreshes forced by an
    unknown ``kid``. Call :meth:`close` when done.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        pseudonym_key: bytes | str,
        leeway_seconds: float = 30.0,
        http_timeout_seconds: float = 2.0,
        jwks_cache_seconds: float = 300.0,
        jwks_refresh_cooldown_seconds: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks_url = jwks_url or None
        self._pseudonym_key = pseudonym_key
        self._leeway = leeway_seconds
        self._http_timeout = http_timeout_seconds
        self._cache_seconds = jwks_cache_seconds
        self._cooldown = jwks_refresh_cooldown_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_forced_refresh = -math.inf
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> TokenVerifier:
        """A verifier for ``settings.oidc_issuer`` / ``oidc_audience`` / ``oidc_jwks_url``."""
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url or None,
            pseudonym_key=settings.pseudonym_key.get_secret_value(),
        )

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` authenticates.

        Raises :class:`AuthenticationError` naming the failed check, or
        :class:`ServiceUnavailableError` when the issuer's keys cannot be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("token malformed") from None
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError(f"algorithm not allowed (only {ALGORITHM})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token has no key id")
        key = await self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_failed_check(exc)) from None
        return self._principal(claims, token)

    async def authenticate(self, token: str | None, method: str) -> Principal | None:
        """``None`` without a token (the caller decides whether one is required), else :meth:`verify`."""
        if token is None:
            return None
        return await self.verify(token)

    async def close(self) -> None:
        """Close the HTTP client used to reach the issuer."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _principal(self, claims: dict[str, Any], token: str) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("subject claim invalid")
        roles = frozenset(_roles(claims.get("roles")))
        patients = claims.get("patients", [])
        if not isinstance(patients, list) or not all(isinstance(p, str) and p for p in patients):
            raise AuthenticationError("patients claim malformed")
        scopes = frozenset(p if is_pseudonym(p) else pseudonymise(p, self._pseudonym_key) for p in patients)
        if Role.PATIENT in roles:
            subject = pseudonymise(subject, self._pseudonym_key)
        return Principal(subject=subject, roles=roles, patient_scopes=scopes, token=token)

    async def _signing_key(self, kid: str) -> jwt.PyJWK:
        await self._ensure_fresh()
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._last_forced_refresh >= self._cooldown:
                self._last_forced_refresh = time.monotonic()
                await self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("unknown signing key")
        return key

    async def _ensure_fresh(self) -> None:
        if self._is_fresh():
            return
        async with self._lock:
            if self._is_fresh():
                return
            try:
                await self._refresh()
            except ServiceUnavailableError:
                if not self._keys:
                    raise
                # Keep serving with the keys we have; try the issuer again after the cooldown.
                log.warning("identity provider unreachable; using cached signing keys")
                self._fetched_at = time.monotonic() - self._cache_seconds + self._cooldown

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and time.monotonic() - self._fetched_at < self._cache_seconds

    async def _refresh(self) -> None:
        if self._jwks_url is None:
            discovery = await self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH, "discovery document")
            if discovery.get("issuer") != self.issuer:
                raise ServiceUnavailableError("identity provider's discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ServiceUnavailableError("identity provider's discovery document has no jwks_uri")
            self._jwks_url = jwks_uri
        document = await self._get_json(self._jwks_url, "JWKS")
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise ServiceUnavailableError("identity provider's JWKS has no keys list")
        self._keys = _usable_keys(keys)
        self._fetched_at = time.monotonic()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._http_timeout, follow_redirects=False)
        try:
            async with asyncio.timeout(self._http_timeout):
                response = await self._client.get(url, headers={"accept": "application/json"})
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ServiceUnavailableError(
                f"identity provider unreachable fetching its {what} ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"identity provider answered HTTP {response.status_code} for its {what}"
            )
        try:
            document = response.json()
        except ValueError:
            raise ServiceUnavailableError(f"identity provider's {what} is not JSON") from None
        if not isinstance(document, dict):
            raise ServiceUnavailableError(f"identity provider's {what} is not a JSON object")
        return document


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` when there is no header.

    Raises :class:`AuthenticationError` when the header is present but not a bearer token.
    """
    if authorization_header is None or not authorization_header.strip():
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("authorization header malformed (expected 'Bearer <token>')")
    return token


def _roles(claim: Any) -> Iterable[Role]:
    if claim is None:
        return ()
    if isinstance(claim, str):
        claim = claim.split()
    if not isinstance(claim, list) or not all(isinstance(r, str) for r in claim):
        raise AuthenticationError("roles claim malformed")
    known = {role.value: role for role in Role}
    return [known[name] for name in claim if name in known]


def _usable_keys(jwks: list[Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in jwks:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM)
        except jwt.PyJWTError:
            log.warning("ignoring an unusable key in the issuer's JWKS")
    return keys


def _failed_check(exc: jwt.PyJWTError) -> str:
    """The name of the check a PyJWT error reports (never its text, which could echo claims)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "audience mismatch"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "issuer mismatch"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "signature invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"required claim {exc.claim!r} missing"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "issued-at claim invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"algorithm not allowed (only {ALGORITHM})"
    if isinstance(exc, jwt.DecodeError):
        return "token malformed"
    return "token invalid"


__all__ = ["Role", "TokenVerifier", "bearer_token"]
