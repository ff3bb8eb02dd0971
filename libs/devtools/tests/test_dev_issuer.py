"""The development OpenID issuer: its key file, its HTTP protocol, the mint command and the fixture."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from novamind.core.auth import Role, TokenVerifier
from novamind.core.errors import AuthenticationError
from novamind.core.privacy import pseudonymise
from novamind.devtools.dev_issuer import KEY_FILE, DevIssuer, RunningDevIssuer, serve_dev_issuer
from novamind.devtools.net import free_port
from novamind.devtools.pytest_plugin import wait_for

pytestmark = pytest.mark.timeout(60)

PSEUDONYM_KEY = "dev-issuer-test-key"
TOKEN_CLI = str(Path(sys.executable).parent / "novamind-token")


def token_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``novamind-token`` as an operator would."""
    return subprocess.run(
        [TOKEN_CLI, *args], capture_output=True, text=True, timeout=30, check=False, env=env
    )


def verifier_for(url: str) -> TokenVerifier:
    return TokenVerifier(issuer=url, audience="novamind", pseudonym_key=PSEUDONYM_KEY)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RunningDevIssuer]:
    with serve_dev_issuer(tmp_path / "keys") as running:
        yield running


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_signing_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key_dir = tmp_path / "var" / "dev-issuer"

    first = DevIssuer(key_dir, "http://127.0.0.1:8090")
    second = DevIssuer(key_dir, "http://127.0.0.1:8090")

    assert mode_of(key_dir / KEY_FILE) == 0o600
    assert first.kid == second.kid
    assert sorted(p.name for p in key_dir.iterdir()) == [KEY_FILE]


def test_issuers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        issuers = list(pool.map(lambda _: DevIssuer(tmp_path / "keys", "http://x"), range(8)))

    assert len({issuer.kid for issuer in issuers}) == 1
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [KEY_FILE]


def test_minted_tokens_are_rs256_with_the_key_id_and_claims(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path, "http://127.0.0.1:8090")

    token = issuer.mint("dr-a", ["clinician"], ["MRN-1"], ttl_seconds=600)

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == issuer.kid
    (jwk,) = issuer.jwks()["keys"]
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=["RS256"], audience="novamind")
    assert claims["iss"] == "http://127.0.0.1:8090"
    assert (claims["sub"], claims["roles"], claims["patients"]) == ("dr-a", ["clinician"], ["MRN-1"])
    assert claims["exp"] - claims["iat"] == 600


def test_rotation_replaces_the_key_file_and_keeps_publishing_the_old_key(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path, "http://x")
    old_kid = issuer.kid

    new_kid = issuer.rotate_key()

    assert new_kid != old_kid
    assert {key["kid"] for key in issuer.jwks()["keys"]} == {old_kid, new_kid}
    assert mode_of(tmp_path / KEY_FILE) == 0o600
    assert DevIssuer(tmp_path, "http://x").kid == new_kid
    issuer.rotate_key(keep_previous=False)
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [issuer.kid]


async def test_discovery_and_jwks_are_served_over_http(served: RunningDevIssuer) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        discovery = (await client.get(f"{served.url}/.well-known/openid-configuration")).json()
        jwks = (await client.get(discovery["jwks_uri"])).json()

    assert discovery["issuer"] == served.url
    assert discovery["jwks_uri"] == served.jwks_url
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    (key,) = jwks["keys"]
    assert (key["kty"], key["alg"], key["use"], key["kid"]) == ("RSA", "RS256", "sig", served.issuer.kid)
    assert "d" not in key and "p" not in key  # public half only
    assert served.issuer.jwks_requests == 1


@pytest.mark.parametrize("as_json", [True, False])
async def test_the_token_endpoint_mints_tokens_the_verifier_accepts(
    served: RunningDevIssuer, as_json: bool
) -> None:
    body: dict[str, Any] = {"subject": "dr-a", "roles": ["clinician", "ops"], "patients": ["MRN-1", "MRN-2"]}
    async with httpx.AsyncClient(timeout=5) as client:
        if as_json:
            response = await client.post(f"{served.url}/token", json={**body, "ttl_seconds": 120})
        else:
            response = await client.post(f"{served.url}/token", data={**body, "ttl_seconds": "120"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 120)
    verifier = verifier_for(served.url)
    try:
        principal = await verifier.verify(answer["access_token"])
    finally:
        await verifier.close()
    assert principal.subject == "dr-a"
    assert principal.roles == frozenset({Role.CLINICIAN, Role.OPS})
    assert principal.patient_scopes == {pseudonymise(p, PSEUDONYM_KEY) for p in ("MRN-1", "MRN-2")}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"roles": ["clinician"]}, "subject is required"),
        ({"subject": "x", "roles": ["wizard"]}, "unknown roles: wizard"),
        ({"subject": "x", "roles": "clinician", "ttl_seconds": "soon"}, "ttl_seconds must be a number"),
        ({"subject": "x", "roles": [1]}, "roles must be a list of strings"),
    ],
)
async def test_the_token_endpoint_refuses_bad_requests(
    served: RunningDevIssuer, body: dict[str, Any], problem: str
) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{served.url}/token", json=body)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": problem}


async def test_the_mint_command_prints_a_token_the_serving_issuer_vouches_for(
    served: RunningDevIssuer,
) -> None:
    key_dir = str(served.issuer.key_dir)
    args = ["mint", "--role", "patient", "--patient", "MRN-9", "--subject", "MRN-9", "--ttl", "300"]
    result = await asyncio.to_thread(token_cli, *args, "--key-dir", key_dir, "--issuer", served.url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()

    verifier = verifier_for(served.url)
    try:
        principal = await verifier.verify(token)
    finally:
        await verifier.close()
    own = pseudonymise("MRN-9", PSEUDONYM_KEY)
    assert (principal.subject, principal.roles, principal.patient_scopes) == (
        own,
        frozenset({Role.PATIENT}),
        frozenset({own}),
    )
    assert jwt.decode(token, options={"verify_signature": False})["exp"] - time.time() <= 300


async def test_a_token_minted_with_another_key_dir_is_not_accepted(
    served: RunningDevIssuer, tmp_path: Path
) -> None:
    other = str(tmp_path / "other")
    result = await asyncio.to_thread(
        token_cli, "mint", "--role", "ops", "--key-dir", other, "--issuer", served.url
    )
    assert result.returncode == 0, result.stderr

    verifier = verifier_for(served.url)
    try:
        with pytest.raises(AuthenticationError, match="unknown signing key"):
            await verifier.verify(result.stdout.strip())
    finally:
        await verifier.close()


def test_the_mint_command_refuses_unknown_roles(tmp_path: Path) -> None:
    result = token_cli("mint", "--role", "wizard", "--key-dir", str(tmp_path))

    assert result.returncode == 2
    assert "invalid choice: 'wizard'" in result.stderr


async def test_the_serve_command_runs_the_issuer(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        TOKEN_CLI,
        "serve",
        "--port",
        str(port),
        "--key-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=1) as client:

            async def answers() -> bool:
                assert process.returncode is None, "novamind-token serve exited"
                try:
                    return (await client.get(f"{url}/.well-known/openid-configuration")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(answers, timeout=20, what="novamind-token serve")
            discovery = (await client.get(f"{url}/.well-known/openid-configuration")).json()
        assert discovery["issuer"] == url
        token = DevIssuer(tmp_path, url).mint("svc-a", ["service"])
        verifier = verifier_for(url)
        try:
            assert (await verifier.verify(token)).roles == frozenset({Role.SERVICE})
        finally:
            await verifier.close()
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 15)


def test_the_serve_command_refuses_production(tmp_path: Path) -> None:
    port = str(free_port())
    env = {**os.environ, "NOVAMIND_ENVIRONMENT": "production"}
    result = token_cli("serve", "--port", port, "--key-dir", str(tmp_path), env=env)

    assert result.returncode == 2
    assert "does not run in production" in result.stderr
    assert not (tmp_path / KEY_FILE).exists()


async def test_the_dev_issuer_fixture_gives_real_tokens(dev_issuer: RunningDevIssuer) -> None:
    verifier = verifier_for(dev_issuer.url)
    try:
        principal = await verifier.verify(dev_issuer.mint("dr-z", ["clinician"], ["MRN-5"]))
    finally:
        await verifier.close()

    assert dev_issuer.url.startswith("http://127.0.0.1:")
    assert principal.subject == "dr-z"
    assert principal.patient_scopes == {pseudonymise("MRN-5", PSEUDONYM_KEY)}
