"""EmbeddingEngine: what an answer carries, input validation, readiness, batching end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from novamind.core.errors import ModelNotReadyError, ValidationError
from novamind.pat.domain.preprocessing import Week, standardise
from novamind.pat.inference import EmbeddingEngine, InferenceConfig, ModelIdentity, prepare_week
from novamind.pat.model.pat import PATEncoder
from novamind.pat.model.weights import sha256_of


async def test_an_answer_carries_the_embedding_model_identity_and_input_quality(
    encoder_s: PATEncoder, identity: ModelIdentity, fast_config: InferenceConfig, active_week: np.ndarray
) -> None:
    week = active_week.copy()
    week[:600] = np.nan  # ten hours not recorded
    async with EmbeddingEngine(encoder_s, identity, config=fast_config) as engine:
        answer = await engine.embed(week)

    assert answer.embedding.shape == (96,) and answer.embedding.dtype == np.float32
    assert answer.explanation is None
    assert (answer.model.name, answer.model.version, answer.model.sha256) == ("PAT-S", "test-1", "ab" * 32)
    assert answer.quality.minutes_present == 10_080 - 600
    assert answer.quality.wear_fraction == pytest.approx((10_080 - 600) / 10_080)


async def test_the_embedding_is_the_encoders_own(
    encoder_s: PATEncoder, identity: ModelIdentity, active_week: np.ndarray
) -> None:
    config = InferenceConfig(
        cpu_backend="torch", cpu_precision="fp32", selection_rows=1, selection_repeats=1, sub_batch=1
    )
    async with EmbeddingEngine(encoder_s, identity, config=config) as engine:
        answer = await engine.embed(active_week)
    with torch.inference_mode():
        direct = encoder_s(torch.from_numpy(standardise(active_week)[None].astype(np.float32))).embedding[0]
    np.testing.assert_allclose(answer.embedding, direct.numpy(), atol=1e-5)


async def test_an_explained_answer_has_a_normalised_week_map(
    encoder_s: PATEncoder, identity: ModelIdentity, fast_config: InferenceConfig, active_week: np.ndarray
) -> None:
    async with EmbeddingEngine(encoder_s, identity, config=fast_config) as engine:
        plain, explained = await asyncio.gather(
            engine.embed(active_week), engine.embed(active_week, explain=True)
        )
    assert explained.explanation is not None
    assert explained.explanation.shape == (7, 24)
    assert np.all(explained.explanation >= 0)
    assert explained.explanation.sum() == pytest.approx(1.0)
    # The explanation path (explicit softmax) and the fused kernel give the same embedding.
    np.testing.assert_allclose(explained.embedding, plain.embedding, rtol=0.02, atol=0.02)


async def test_a_real_week_reports_its_masks_and_follows_its_local_clock(
    encoder_s: PATEncoder, identity: ModelIdentity, fast_config: InferenceConfig, real_weeks: list[Week]
) -> None:
    week = next(w for w in real_weeks if w.wear_fraction < 1)
    async with EmbeddingEngine(encoder_s, identity, config=fast_config) as engine:
        answer = await engine.embed(week, explain=True)
    assert answer.quality.minutes_present == int((~week.mask_missing).sum())
    assert answer.quality.wear_fraction == pytest.approx(week.wear_fraction)
    assert answer.explanation is not None and answer.explanation.sum() == pytest.approx(1.0)


async def test_concurrent_weeks_share_batches_through_the_engine(
    encoder_s: PATEncoder, identity: ModelIdentity, active_week: np.ndarray
) -> None:
    config = InferenceConfig(
        cpu_backend="torch", selection_rows=1, selection_repeats=1, sub_batch=4, max_batch=8, max_wait_ms=50
    )
    weeks = [np.roll(active_week, 60 * i) for i in range(24)]
    async with EmbeddingEngine(encoder_s, identity, config=config) as engine:
        answers = await asyncio.gather(*(engine.embed(w) for w in weeks))
        single = await engine.embed(weeks[5])
        assert engine._plain is not None
        assert engine._plain.stats.batches <= 5  # 24 weeks in batches of at most 8 (+1 single)
    np.testing.assert_allclose(answers[5].embedding, single.embedding, rtol=0.02, atol=0.02)


@pytest.mark.parametrize(
    ("week", "field"),
    [
        (np.ones(10_079), "week.values"),
        (np.ones((2, 10_080)), "week.values"),
        (np.full(10_080, np.nan), "week.values"),
        (np.where(np.arange(10_080) == 42, np.inf, 1.0), "week.values[42]"),
        (np.where(np.arange(10_080) == 7, -3.0, 1.0), "week.values[7]"),
        (["a"] * 10_080, "week.values"),
    ],
    ids=["short", "two-weeks", "nothing-recorded", "infinite", "negative", "not-numbers"],
)
def test_a_malformed_week_is_refused_naming_the_field(week: object, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        prepare_week(week)  # type: ignore[arg-type]
    assert error.value.field == field


def test_non_wear_is_imputed_and_counted_out_of_the_wear_fraction(active_week: np.ndarray) -> None:
    week = active_week.copy()
    week[2000:2200] = 0  # 200 minutes off the wrist (Choi: 90+ zero minutes)
    prepared = prepare_week(week)
    assert prepared.quality.minutes_present == 10_080
    assert prepared.quality.wear_fraction == pytest.approx(1 - 200 / 10_080, abs=2 / 10_080)
    assert np.isfinite(prepared.values).all() and prepared.values.dtype == np.float32


async def test_readiness_follows_start_and_close(
    encoder_s: PATEncoder, identity: ModelIdentity, fast_config: InferenceConfig, active_week: np.ndarray
) -> None:
    engine = EmbeddingEngine(encoder_s, identity, config=fast_config)
    assert not engine.ready()
    with pytest.raises(ModelNotReadyError):
        await engine.embed(active_week)
    choice = await engine.start()
    assert engine.ready() and choice.candidate.kind == "torch"
    await engine.close()
    assert not engine.ready()
    with pytest.raises(ModelNotReadyError):
        await engine.embed(active_week)


async def test_an_impossible_configuration_fails_start_not_requests(
    encoder_s: PATEncoder, identity: ModelIdentity
) -> None:
    from novamind.pat.inference import Hardware

    engine = EmbeddingEngine(
        encoder_s, identity, config=InferenceConfig(device="cuda"), hardware=Hardware(cpu_cores=2)
    )
    with pytest.raises(ModelNotReadyError):
        await engine.start()
    assert not engine.ready()


def test_identity_of_a_weights_file_is_its_sha256(tmp_path: Path) -> None:
    weights = tmp_path / "PAT-M_29k_weights.h5"
    weights.write_bytes(b"not really weights")
    identity = ModelIdentity.of_file(weights, name="PAT-M", version="29k")
    assert identity.sha256 == sha256_of(weights) and len(identity.sha256) == 64
