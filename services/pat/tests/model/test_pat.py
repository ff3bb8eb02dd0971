"""PAT encoder: sizes, shapes, positional table and attention weights."""

from __future__ import annotations

import math

import pytest
import torch

from novamind.pat.model import PAT_SIZES, PATConfig, PATEncoder, sinusoidal_positional_embeddings
from novamind.pat.model.pat import tensorflow_float32_exp

SIZES = ("S", "M", "L", "H")


def _week_batch(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 10_080, generator=generator)


@pytest.mark.parametrize(
    ("size", "patch_size", "heads", "layers", "patches"),
    [("S", 18, 6, 1, 560), ("M", 18, 12, 2, 560), ("L", 9, 12, 4, 1120), ("H", 5, 12, 8, 2016)],
)
def test_presets_are_the_published_sizes(
    size: str, patch_size: int, heads: int, layers: int, patches: int
) -> None:
    config = PATConfig.for_size(size)

    assert (config.patch_size, config.encoder_num_heads, config.encoder_num_layers) == (
        patch_size,
        heads,
        layers,
    )
    assert (config.embed_dim, config.encoder_ff_dim, config.encoder_rate) == (96, 256, 0.1)
    assert (config.input_size, config.num_patches, config.key_dim) == (10_080, patches, 96)
    assert config.mask_ratio == 0.90 and config.decoder_num_layers == 1 and config.name == f"PAT-{size}"


@pytest.mark.parametrize("alias", ["m", "medium", "PAT-M", "pat_m", " Medium "])
def test_for_size_accepts_the_usual_spellings(alias: str) -> None:
    assert PATConfig.for_size(alias) == PAT_SIZES["M"]


def test_for_size_rejects_unknown_sizes_and_applies_overrides() -> None:
    with pytest.raises(ValueError, match="unknown PAT size 'XL'"):
        PATConfig.for_size("XL")
    assert PATConfig.for_size("S", mse_only_masked=True).mse_only_masked


def test_config_rejects_a_week_that_does_not_split_into_patches() -> None:
    with pytest.raises(ValueError, match="not a multiple of patch_size 7"):
        PATConfig(patch_size=7, input_size=10_081)


@pytest.mark.parametrize(
    ("size", "parameters"), [("S", 274_720), ("M", 993_440), ("L", 1_984_192), ("H", 3_967_040)]
)
def test_parameter_counts_match_the_paper(size: str, parameters: int) -> None:
    # Paper Table 1 lists 285 K / 1.00 M / 1.99 M including the 12,545-parameter fine-tuning head.
    encoder = PATEncoder(PATConfig.for_size(size))

    assert sum(p.numel() for p in encoder.parameters()) == parameters


def test_positional_table_is_sines_then_cosines_of_the_official_frequencies() -> None:
    table = sinusoidal_positional_embeddings(2016, 96)

    assert table.shape == (2016, 96) and table.dtype == torch.float32
    assert torch.equal(table[0], torch.cat([torch.zeros(48), torch.ones(48)]))
    for position in (1, 17, 2015):
        for k in (0, 5, 47):
            angle = position * math.exp(-math.log(10000.0) * 2 * k / 96)
            assert table[position, k].item() == pytest.approx(math.sin(angle), abs=2e-4)
            assert table[position, 48 + k].item() == pytest.approx(math.cos(angle), abs=2e-4)


def test_tensorflow_exp_is_within_one_ulp_of_exp() -> None:
    x = torch.linspace(-80.0, 80.0, 100_001)

    ours = tensorflow_float32_exp(x).double()
    exact = torch.exp(x.double())

    assert ((ours - exact).abs() / exact).max() < 2**-23  # one float32 ulp, relative


def test_positional_table_is_a_buffer_not_a_parameter() -> None:
    encoder = PATEncoder(PAT_SIZES["S"])

    assert "positional_embeddings" not in dict(encoder.named_parameters())
    assert "positional_embeddings" not in encoder.state_dict()


@pytest.mark.parametrize("size", SIZES)
def test_encoder_shapes(size: str) -> None:
    config = PATConfig.for_size(size)
    batch = 1 if size == "H" else 2
    encoder = PATEncoder(config).eval()

    with torch.inference_mode():
        out = encoder(_week_batch(batch))

    assert out.tokens.shape == (batch, config.num_patches, 96)
    assert out.embedding.shape == (batch, 96)
    assert out.attention == ()
    torch.testing.assert_close(out.embedding, out.tokens.mean(dim=1))


@pytest.mark.parametrize("size", ["S", "M"])
def test_attention_weights_per_layer_are_row_stochastic_and_do_not_change_the_output(size: str) -> None:
    config = PATConfig.for_size(size)
    torch.manual_seed(0)
    encoder = PATEncoder(config).eval()
    weeks = _week_batch(2)

    with torch.inference_mode():
        fast = encoder(weeks)
        explained = encoder(weeks, return_attention=True)

    assert len(explained.attention) == config.encoder_num_layers
    for weights in explained.attention:
        assert weights.shape == (2, config.encoder_num_heads, config.num_patches, config.num_patches)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(explained.tokens, fast.tokens, atol=1e-5, rtol=1e-5)


def test_initialisation_is_keras_glorot_uniform_with_zero_biases() -> None:
    torch.manual_seed(0)
    block = PATEncoder(PAT_SIZES["M"]).blocks[0]
    # Keras fans: Dense (in, out); attention kernels (96, 12, 96) and (12, 96, 96) as convolutions.
    bounds = {
        block.attention.query: math.sqrt(6 / (12 * 96 + 96 * 96)),
        block.attention.attention_output: math.sqrt(6 / (96 * 12 + 96 * 12)),
        block.ff1: math.sqrt(6 / (96 + 256)),
    }

    for layer, bound in bounds.items():
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.95 * bound
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_eval_mode_is_deterministic_and_train_mode_applies_dropout() -> None:
    torch.manual_seed(0)
    encoder = PATEncoder(PAT_SIZES["S"])
    weeks = _week_batch(2)

    encoder.eval()
    with torch.inference_mode():
        first, second = encoder(weeks).embedding, encoder(weeks).embedding
    encoder.train()
    with torch.inference_mode():
        dropped = encoder(weeks).embedding

    assert torch.equal(first, second)
    assert not torch.allclose(first, dropped)


@pytest.mark.parametrize("shape", [(10_080,), (2, 10_079), (1, 560, 18)])
def test_encoder_rejects_inputs_that_are_not_weeks(shape: tuple[int, ...]) -> None:
    encoder = PATEncoder(PAT_SIZES["S"])

    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 10080\)"):
        encoder(torch.zeros(shape))


def test_encoder_gradients_reach_every_parameter() -> None:
    encoder = PATEncoder(PAT_SIZES["M"])

    encoder(_week_batch(1)).embedding.square().sum().backward()

    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
