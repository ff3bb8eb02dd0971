"""A local OpenID issuer for ``make dev`` and tests: RS256 tokens any role can be minted for.

It speaks the real protocol, so services verify its tokens exactly as they verify a production
identity provider's: ``/.well-known/openid-configuration`` names the JWKS at
``/.well-known/jwks.json``, tokens are RS256 with a ``kid`` header. ``POST /token`` (form or JSON:
``subject``, ``roles``, ``patients``, optional ``ttl_seconds`` and ``audience``) mints a token
for anyone who asks, which is why this lives in devtools and ``serve`` refuses to run in
production.

The signing key is an RSA-2048 key created once in ``key_dir`` (file mode 0600) and reused, so
tokens minted from the command line verify against a running issuer that shares the directory::

    novamind-token serve                                  # http://127.0.0.1:8090
    novamind-token mint --role clinician --patient P-001  # prints a token
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from novamind.core.auth import ALGORITHM, Role
from novamind.core.config import CoreSettings, Environment
from novamind.devtools.net import free_port

KEY_FILE = "signing-key.pem"
DEFAULT_KEY_DIR = Path("var/dev-issuer")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_AUDIENCE = "novamind"
DEFAULT_TTL_SECONDS = 3600


class DevIssuer:
    """Signs tokens with an RSA key kept in ``key_dir``; ``issuer_url`` is the ``iss`` it puts in them.

    ``jwks_requests`` counts the JWKS documents served through :func:`build_app`.
    """

    def __init__(self, key_dir: Path, issuer_url: str) -> None:
        self.key_dir = Path(key_dir)
        self.issuer_url = issuer_url
        self.jwks_requests = 0
        self._lock = threading.Lock()
        self._key = _load_or_create_key(self.key_dir / KEY_FILE)
        self._kid = _thumbprint(self._key.public_key())
        self._retired: dict[str, rsa.RSAPublicKey] = {}

    @property
    def kid(self) -> str:
        """The key id of the current signing key (its RFC 7638 thumbprint)."""
        return self._kid

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set: the current public key and any retired ones still published."""
        with self._lock:
            keys = [(self._kid, self._key.public_key()), *self._retired.items()]
        return {"keys": [_public_jwk(kid, key) for kid, key in keys]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID provider configuration document."""
        base = self.issuer_url.rstrip("/")
        return {
            "issuer": self.issuer_url,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "token_endpoint": f"{base}/token",
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def mint(
        self,
        subject: str,
        roles: Sequence[str],
        patients: Sequence[str] = (),
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        audience: str = DEFAULT_AUDIENCE,
        *,
        issued_at: float | None = None,
        not_before: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An RS256 token for ``subject`` with ``roles`` and ``patients`` claims.

        ``ttl_seconds`` counts from ``issued_at`` (default now, epoch seconds); a negative TTL
        gives an already expired token. ``not_before`` sets ``nbf`` (default: ``issued_at``).
        ``extra_claims`` are added last and may override any claim; a claim set to ``None`` there
        is left out of the token.
        """
        now = time.time() if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "sub": subject,
            "aud": audience,
            "iat": int(now),
            "nbf": int(now if not_before is None else not_before),
            "exp": int(now + ttl_seconds),
            "jti": uuid.uuid4().hex,
            "roles": [str(role) for role in roles],
            "patients": list(patients),
        }
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        with self._lock:
            key, kid = self._key, self._kid
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def rotate_key(self, *, keep_previous: bool = True) -> str:
        """Replace the signing key with a new one (written to ``key_dir``); returns the new kid.

        With ``keep_previous`` the old public key stays in the JWKS (as real issuers do during a
        rotation), so tokens already issued keep verifying.
        """
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private_key(self.key_dir / KEY_FILE, new_key, replace=True)
        with self._lock:
            if keep_previous:
                self._retired[self._kid] = self._key.public_key()
            else:
                self._retired.clear()
            self._key = new_key
            self._kid = _thumbprint(new_key.public_key())
            return self._kid


def build_app(issuer: DevIssuer) -> Starlette:
    """The issuer's HTTP app: discovery document, JWKS and ``POST /token``."""

    async def configuration(request: Request) -> JSONResponse:
        return JSONResponse(issuer.discovery())

    async def jwks(request: Request) -> JSONResponse:
        issuer.jwks_requests += 1
        return JSONResponse(issuer.jwks(), headers={"cache-control": "public, max-age=300"})

    async def token(request: Request) -> JSONResponse:
        try:
            params = await _token_params(request)
        except ValueError as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, status_code=400)
        ttl = params.pop("ttl_seconds")
        access_token = issuer.mint(ttl_seconds=ttl, **params)
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": int(ttl)},
            headers={"cache-control": "no-store"},
        )

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", configuration, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
            Route("/token", token, methods=["POST"]),
        ]
    )


async def _token_params(request: Request) -> dict[str, Any]:
    """``subject``, ``roles``, ``patients``, ``ttl_seconds``, ``audience`` from JSON or a URL-encoded form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise ValueError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        raw_roles, raw_patients = body.get("roles", []), body.get("patients", [])
        subject, ttl, audience = body.get("subject"), body.get("ttl_seconds"), body.get("audience")
    elif request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            form = urllib.parse.parse_qs((await request.body()).decode(), strict_parsing=False)
        except UnicodeDecodeError:
            raise ValueError("form body is not UTF-8") from None
        raw_roles, raw_patients = form.get("roles", []), form.get("patients", [])
        subject, ttl, audience = (
            form.get(name, [None])[0] for name in ("subject", "ttl_seconds", "audience")
        )
    else:
        raise ValueError("send application/json or application/x-www-form-urlencoded")
    roles = _string_list(raw_roles, "roles")
    unknown = sorted(set(roles) - {role.value for role in Role})
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(unknown)}")
    if not isinstance(subject, str) or not subject:
        raise ValueError("subject is required")
    try:
        ttl_seconds = float(ttl) if ttl is not None else float(DEFAULT_TTL_SECONDS)
    except (TypeError, ValueError):
        raise ValueError("ttl_seconds must be a number") from None
    if audience is not None and not isinstance(audience, str):
        raise ValueError("audience must be a string")
    return {
        "subject": subject,
        "roles": roles,
        "patients": _string_list(raw_patients, "patients"),
        "ttl_seconds": ttl_seconds,
        "audience": audience or DEFAULT_AUDIENCE,
    }


def _string_list(value: Any, name: str) -> list[str]:
    """A list of strings from a list or a comma-separated string (form fields may repeat or not)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} must be a list of strings")
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


class RunningDevIssuer:
    """A :class:`DevIssuer` served over HTTP on loopback by uvicorn in a background thread."""

    def __init__(self, issuer: DevIssuer, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.issuer = issuer
        self._server = server
        self._thread = thread

    @property
    def url(self) -> str:
        """The issuer URL (``iss``), e.g. ``http://127.0.0.1:54321``; set it as ``NOVAMIND_OIDC_ISSUER``."""
        return self.issuer.issuer_url

    @property
    def jwks_url(self) -> str:
        return f"{self.url.rstrip('/')}/.well-known/jwks.json"

    def mint(
        self,
        subject: str,
        roles: Sequence[str],
        patients: Sequence[str] = (),
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        audience: str = DEFAULT_AUDIENCE,
        **kwargs: Any,
    ) -> str:
        """:meth:`DevIssuer.mint` (in process; no HTTP round trip)."""
        return self.issuer.mint(subject, roles, patients, ttl_seconds, audience, **kwargs)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


@contextlib.contextmanager
def serve_dev_issuer(
    key_dir: Path, *, host: str = DEFAULT_HOST, port: int | None = None, start_timeout: float = 15.0
) -> Iterator[RunningDevIssuer]:
    """Serve a :class:`DevIssuer` for ``key_dir`` on ``host:port`` (default: a free port) during the block.

    Raises :class:`RuntimeError` if the server does not start within ``start_timeout`` seconds.
    """
    port = port or free_port()
    issuer = DevIssuer(key_dir, f"http://{host}:{port}")
    config = uvicorn.Config(
        build_app(issuer), host=host, port=port, log_config=None, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"dev-issuer-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"the dev issuer did not start on {host}:{port}")
        time.sleep(0.01)
    running = RunningDevIssuer(issuer, server, thread)
    try:
        yield running
    finally:
        running.stop()


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_private_key(
            path, rsa.generate_private_key(public_exponent=65537, key_size=2048), replace=False
        )
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _write_private_key(path: Path, key: rsa.RSAPrivateKey, *, replace: bool) -> None:
    """Write ``key`` as PEM with mode 0600, atomically; without ``replace`` an existing file wins."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        if replace:
            os.replace(temporary, path)
        else:
            # link() fails if another process created the key first; then its key is used.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _public_jwk(kid: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": ALGORITHM,
        "kid": kid,
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def _thumbprint(key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of ``key``."""
    numbers = key.public_numbers()
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``novamind-token`` console script."""
    settings = CoreSettings()
    parser = argparse.ArgumentParser(prog="novamind-token", description="Novamind development token issuer.")
    commands = parser.add_subparsers(dest="command", required=True)

    mint = commands.add_parser("mint", help="print a signed token")
    mint.add_argument("--role", action="append", required=True, choices=[role.value for role in Role])
    mint.add_argument("--patient", action="append", default=[], help="a patient id or pseudonym (repeatable)")
    mint.add_argument("--subject", default=None, help="the sub claim (default: dev-<first role>)")
    mint.add_argument("--ttl", type=float, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds")
    mint.add_argument("--audience", default=settings.oidc_audience)
    mint.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    mint.add_argument(
        "--issuer", default=settings.oidc_issuer, help="the iss claim (the serving issuer's URL)"
    )

    serve = commands.add_parser("serve", help="run the issuer over HTTP")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR)
    serve.add_argument("--issuer", default=None, help="the iss claim (default: http://HOST:PORT)")

    args = parser.parse_args(argv)
    if args.command == "mint":
        issuer = DevIssuer(args.key_dir, args.issuer)
        subject = args.subject or f"dev-{args.role[0]}"
        print(issuer.mint(subject, args.role, args.patient, args.ttl, args.audience))
        return 0
    if settings.environment is Environment.PRODUCTION:
        print("novamind-token: the development issuer does not run in production", file=sys.stderr)
        return 2
    issuer = DevIssuer(args.key_dir, args.issuer or f"http://{args.host}:{args.port}")
    print(f"dev issuer {issuer.issuer_url} (kid {issuer.kid})", file=sys.stderr)
    server = _SignalOwningServer(
        uvicorn.Config(build_app(issuer), host=args.host, port=args.port, log_level="warning")
    )

    async def run_server() -> None:
        # SIGTERM/SIGINT stop the server gracefully and the process exits 0 (uvicorn's own
        # handling re-raises the signal after shutdown, which a supervisor reads as a crash).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.request_exit)
        await server.serve()

    asyncio.run(run_server())
    return 0


class _SignalOwningServer(uvicorn.Server):
    """uvicorn whose caller handles SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True


if __name__ == "__main__":
    raise SystemExit(main())
