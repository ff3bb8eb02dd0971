"""Bearer tokens: verified against the issuer's JWKS, a bad one fails the operation UNAUTHENTICATED."""

from __future__ import annotations

import pytest

from .conftest import GatewayFactory, Tokens

QUERY = "{ serviceHealth { service } }"


async def test_a_bad_token_fails_the_whole_operation_naming_the_failed_check(
    gateway_factory: GatewayFactory, tokens: Tokens
) -> None:
    expired = tokens.issuer.mint("dr-x", ["clinician"], ttl_seconds=-120)
    foreign = tokens.issuer.mint("dr-x", ["clinician"], audience="another-api")
    async with gateway_factory() as gateway:
        for token, check in [
            (expired, "token expired"),
            (foreign, "audience mismatch"),
            ("abc.def", "token malformed"),
        ]:
            response = await gateway.post(QUERY, token=token)
            assert response.status_code == 200
            body = response.json()
            assert body == {
                "data": None,
                "errors": [{"message": check, "extensions": {"code": "UNAUTHENTICATED"}}],
            }
            assert token not in response.text

        response = await gateway.http.post(
            gateway.url, json={"query": QUERY}, headers={"authorization": "Basic dXNlcjpwYXNz"}
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        # Service health stays open to callers without a token.
        assert "errors" not in await gateway.query(QUERY)


@pytest.mark.parametrize("auth_required", [True, False])
async def test_without_a_token_patient_data_needs_auth_required_off(
    gateway_factory: GatewayFactory, auth_required: bool
) -> None:
    async with gateway_factory(auth_required=auth_required) as gateway:
        body = await gateway.query("{ patients { edges { node { id } } } }")
    codes = {e["extensions"]["code"] for e in body.get("errors") or []}
    if auth_required:
        assert codes == {"FORBIDDEN"}
    else:
        # Acting as the development service principal, the call reaches the (absent) twin.
        assert codes == {"SERVICE_UNAVAILABLE"}


def test_auth_cannot_be_switched_off_in_production() -> None:
    from pydantic import ValidationError

    from novamind.gateway.config import GatewaySettings

    with pytest.raises(ValidationError, match="auth_required cannot be turned off in production"):
        GatewaySettings(environment="production", auth_required=False)
