"""PAT masked-autoencoder pretraining (paper §4.2): masking, realignment, loss, optimisation."""

from __future__ import annotations

import pytest
import torch

from novamind.pat.model import PAT_SIZES, PATConfig, PATMaskedAutoencoder


def _weeks(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 10_080, generator=generator).clamp(-3, 3)


@pytest.mark.parametrize(("size", "masked"), [("S", 504), ("M", 504), ("L", 1008), ("H", 1814)])
def test_mask_ratio_is_honoured(size: str, masked: int) -> None:
    config = PATConfig.for_size(size)
    model = PATMaskedAutoencoder(config).eval()

    with torch.inference_mode():
        out = model(_weeks(1), generator=torch.Generator().manual_seed(1))

    assert config.num_masked == masked  # round(0.90 * patches), as tf.math.round
    assert out.mask.shape == (config.num_patches,) and out.mask.dtype == torch.bool
    assert int(out.mask.sum()) == masked
    assert out.reconstruction.shape == (1, 10_080)
    assert out.reconstruction.abs().max() < 2.0  # 2 * tanh: the official 2-SD cap
    assert out.loss.shape == ()


def test_masks_differ_between_calls_and_cover_patches_uniformly() -> None:
    model = PATMaskedAutoencoder(PAT_SIZES["S"]).eval()
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(200, 560, dtype=torch.bool)
    for i in range(200):
        masks[i, model.random_mask(generator)[:504]] = True

    assert not torch.equal(masks[0], masks[1])
    assert (masks.float().mean(dim=0) - 0.9).abs().max() < 0.12


def test_forward_masks_the_first_patches_of_its_permutation() -> None:
    model = PATMaskedAutoencoder(PAT_SIZES["S"]).eval()

    with torch.inference_mode():
        out = model(_weeks(1), generator=torch.Generator().manual_seed(5))
    shuffle = model.random_mask(torch.Generator().manual_seed(5))

    assert out.mask[shuffle[:504]].all() and not out.mask[shuffle[504:]].any()


def test_decoder_sees_each_encoded_token_at_its_own_patch_and_mask_tokens_elsewhere() -> None:
    torch.manual_seed(0)
    model = PATMaskedAutoencoder(PAT_SIZES["S"]).eval()
    weeks = _weeks(2)
    shuffle = torch.randperm(560, generator=torch.Generator().manual_seed(3))
    masked, visible = shuffle[:504], shuffle[504:]
    seen: list[torch.Tensor] = []
    model.decoder_blocks[0].register_forward_pre_hook(lambda _module, args: seen.append(args[0]))

    with torch.inference_mode():
        model(weeks, shuffle=shuffle)
        positions = model.encoder.positional_embeddings
        tokens = model.encoder.embed_patches(weeks)[:, visible] + positions[visible]
        encoded, _ = model.encoder.transform(tokens)

    decoder_input = seen[0]
    torch.testing.assert_close(decoder_input[:, visible], encoded + positions[visible])
    torch.testing.assert_close(
        decoder_input[:, masked], (model.mask_token + positions[masked]).expand(2, -1, -1)
    )


def test_masked_only_loss_ignores_the_target_on_visible_patches() -> None:
    config = PATConfig.for_size("S", mse_only_masked=True)
    torch.manual_seed(0)
    model = PATMaskedAutoencoder(config).eval()
    weeks = _weeks(2)
    shuffle = torch.randperm(560, generator=torch.Generator().manual_seed(1))
    minute_masked = torch.zeros(560, dtype=torch.bool)
    minute_masked[shuffle[: config.num_masked]] = True
    minute_masked = minute_masked.repeat_interleave(18)  # (10080,)

    with torch.inference_mode():
        base = model(weeks, shuffle=shuffle)
        changed_visible = weeks.clone()
        changed_visible[:, ~minute_masked] += 5.0
        visible_loss = model(weeks, changed_visible, shuffle=shuffle).loss
        changed_masked = weeks.clone()
        changed_masked[:, minute_masked] += 5.0
        masked_loss = model(weeks, changed_masked, shuffle=shuffle).loss

    assert torch.equal(base.mask, minute_masked.view(560, 18)[:, 0])
    assert visible_loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    assert masked_loss.item() > base.loss.item() + 1.0
    expected = (base.reconstruction - weeks)[:, minute_masked].square().mean()
    assert base.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_default_loss_is_the_papers_mse_over_every_minute() -> None:
    # §2.2, Table 3c: the released encoders were pretrained with MSE on all minutes.
    torch.manual_seed(0)
    model = PATMaskedAutoencoder(PAT_SIZES["S"]).eval()
    weeks = _weeks(2)

    with torch.inference_mode():
        out = model(weeks, generator=torch.Generator().manual_seed(1))

    assert not PAT_SIZES["S"].mse_only_masked
    assert out.loss.item() == pytest.approx((out.reconstruction - weeks).square().mean().item(), rel=1e-5)


def test_a_few_optimisation_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    model = PATMaskedAutoencoder(PAT_SIZES["S"])
    weeks = _weeks(2)
    shuffle = torch.randperm(560, generator=torch.Generator().manual_seed(1))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def evaluation_loss() -> float:
        model.eval()
        with torch.inference_mode():
            return model(weeks, shuffle=shuffle).loss.item()

    before = evaluation_loss()
    model.train()
    for step in range(5):
        optimiser.zero_grad()
        model(weeks, generator=torch.Generator().manual_seed(step)).loss.backward()
        optimiser.step()
    after = evaluation_loss()

    assert after < 0.9 * before


def test_training_is_deterministic_under_manual_seed() -> None:
    def run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(42)
        model = PATMaskedAutoencoder(PAT_SIZES["S"])
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss = model(_weeks(2)).loss
        loss.backward()
        optimiser.step()
        return loss.detach(), model(_weeks(2)).reconstruction.detach()

    first, second = run(), run()

    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])


def test_the_pretrained_encoder_is_a_plain_pat_encoder() -> None:
    model = PATMaskedAutoencoder(PAT_SIZES["M"])

    encoder_keys = {k.removeprefix("encoder.") for k in model.state_dict() if k.startswith("encoder.")}

    assert encoder_keys == set(model.encoder.state_dict())
    assert {k for k in model.state_dict() if not k.startswith("encoder.")} == {
        "mask_token",
        *(f"decoder_blocks.0.{k}" for k in model.decoder_blocks[0].state_dict()),
        "decoder_dense.weight",
        "decoder_dense.bias",
    }
