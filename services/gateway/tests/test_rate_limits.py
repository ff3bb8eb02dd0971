"""Per-client rate limits answer RATE_LIMITED in a normal GraphQL response, in memory or in Redis."""

from __future__ import annotations

import pytest

from .conftest import GatewayFactory, Tokens

REDIS_URL = "redis://127.0.0.1:6379/0"
QUERY = "{ serviceHealth { service } }"


@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["memory", "redis"])
async def test_a_client_over_its_limit_gets_rate_limited_and_others_do_not(
    gateway_factory: GatewayFactory, tokens: Tokens, redis_url: str
) -> None:
    async with gateway_factory(rate_limit="3/minute", redis_url=redis_url) as gateway:
        assert gateway.gateway.services.rate_limiter.backend == ("redis" if redis_url else "memory")
        busy, other = tokens.issuer.mint("busy-client", ["ops"]), tokens.issuer.mint("other-client", ["ops"])
        for _ in range(3):
            assert "errors" not in await gateway.query(QUERY, token=busy)

        response = await gateway.post(QUERY, token=busy)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 0 < error["extensions"]["retryAfter"] <= 60
        assert "rate limit of 3 per 1 minute exceeded" in error["message"]

        assert "errors" not in await gateway.query(QUERY, token=other)
        # Anonymous callers are counted by address, apart from any token's subject.
        assert "errors" not in await gateway.query(QUERY)


async def test_replicas_sharing_redis_share_one_allowance(
    gateway_factory: GatewayFactory, tokens: Tokens
) -> None:
    async with gateway_factory(rate_limit="4/minute", redis_url=REDIS_URL) as first:
        namespace = first.settings.rate_limit_namespace
        async with gateway_factory(
            rate_limit="4/minute", redis_url=REDIS_URL, rate_limit_namespace=namespace
        ) as second:
            token = tokens.issuer.mint("shared-client", ["ops"])
            for replica in (first, second, first, second):
                assert "errors" not in await replica.query(QUERY, token=token)
            body = await first.query(QUERY, token=token)
            assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            body = await second.query(QUERY, token=token)
            assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
