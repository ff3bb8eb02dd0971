"""The Pretrained Actigraphy Transformer (PAT), in one file: config, blocks, encoder, masked autoencoder.

Paper: Ruan, Zhang, Oh, Jin & Jacobson, "AI Foundation Models for Wearable Movement Data in Mental
Health Research", arXiv:2411.15240 (sections cited as §). Official code: the Keras notebooks of
``njacobsonlab/Pretrained-Actigraphy-Transformer`` (``Pretraining/PAT_Pretraining.ipynb``,
``Fine-tuning/PAT_finetuning.ipynb``). Where the paper is silent the official code decides, and the
module names below are the Keras layer names, so that :mod:`.weights` maps them one to one:

=============================  ====================================================================
Keras layer (official)         here
=============================  ====================================================================
``reshape``                    ``x.view(batch, num_patches, patch_size)``
``dense``                      ``PATEncoder.patch_embedding`` (linear projection, §4.1)
``get_positional_embeddings``  ``sinusoidal_positional_embeddings`` (fixed, not trained, §4.1)
``encoder_layer_{i}_*``        ``PATEncoder.blocks[i - 1]`` (an :class:`EncoderBlock`)
``global_avg_pool``            mean over patches (the fine-tuning models' pooling)
=============================  ====================================================================

Facts from the official code that the paper does not state, all reproduced here:

* attention is Keras ``MultiHeadAttention(num_heads, key_dim=embed_dim)``: every head projects to
  the full 96 dimensions (not 96 / heads), so PAT-M has 12 heads of 96;
* the block is post-norm: ``norm1(x + dropout(attention(x)))`` then
  ``norm2(h + dropout2(ff2(relu(ff1(h)))))``, LayerNorm epsilon 1e-6, ReLU (not GELU);
* no dropout on the embeddings, none inside attention (Keras' default 0.0);
* the positional table is ``concat([sin(p * w), cos(p * w)])`` (sines in the first half of the
  embedding, cosines in the second, not interleaved), with ``w = exp(-ln(10000) * 2k / embed_dim)``
  computed in float32 by TensorFlow, whose ``exp`` we reproduce bit for bit.

The parameter counts match the paper's Table 1 once its 128-unit classification head is added:
encoder only, PAT-S 274,720, PAT-M 993,440, PAT-L 1,984,192, PAT-H 3,967,040.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MINUTES_PER_WEEK: Final = 10_080

# -- Configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PATConfig:
    """Hyper-parameters of one PAT size; field names are the official notebooks' variable names."""

    name: str = "PAT-M"
    input_size: int = MINUTES_PER_WEEK  # minutes of activity in one input week
    patch_size: int = 18  # minutes per patch (S)
    embed_dim: int = 96  # D, constant through the encoder (§4.1)
    encoder_num_heads: int = 12
    encoder_ff_dim: int = 256
    encoder_num_layers: int = 2
    encoder_rate: float = 0.1  # dropout
    decoder_num_heads: int = 12
    decoder_ff_dim: int = 256
    decoder_num_layers: int = 1
    decoder_rate: float = 0.1
    mask_ratio: float = 0.90  # share of patches hidden from the encoder in pretraining (§2.2, Table 3a)
    # §2.2, Table 3c: MSE over every minute trains a much better encoder than MSE over the masked
    # minutes only (AUC 0.773 vs 0.541); the released encoders are the "mse_all" ones.
    mse_only_masked: bool = False
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.patch_size <= 0 or self.input_size % self.patch_size:
            raise ValueError(
                f"input_size {self.input_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even for the sine/cosine table, got {self.embed_dim}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @property
    def num_patches(self) -> int:
        """N = T / S, the number of tokens the transformer sees (§4.1)."""
        return self.input_size // self.patch_size

    @property
    def key_dim(self) -> int:
        """Per-head size of queries, keys and values: the official code passes ``key_dim=embed_dim``."""
        return self.embed_dim

    @property
    def num_masked(self) -> int:
        """Patches masked per week in pretraining, rounded as ``tf.math.round`` does (half to even)."""
        return round(self.mask_ratio * self.num_patches)

    @classmethod
    def for_size(cls, size: str, **overrides: object) -> PATConfig:
        """The preset for ``size`` ("S", "M", "L", "H", "small", "PAT-M", ... case-insensitive)."""
        key = size.strip().upper().removeprefix("PAT-").removeprefix("PAT_")
        key = {"SMALL": "S", "MEDIUM": "M", "LARGE": "L", "HUGE": "H"}.get(key, key)
        if key not in PAT_SIZES:
            raise ValueError(f"unknown PAT size {size!r}; expected one of {', '.join(PAT_SIZES)}")
        return replace(PAT_SIZES[key], **overrides)  # type: ignore[arg-type]


#: The four published sizes (official notebooks, "Model Size" cell). The decoder is one block
#: with the encoder's head count in every size.
PAT_SIZES: Final[Mapping[str, PATConfig]] = {
    "S": PATConfig("PAT-S", patch_size=18, encoder_num_heads=6, encoder_num_layers=1, decoder_num_heads=6),
    "M": PATConfig("PAT-M", patch_size=18, encoder_num_heads=12, encoder_num_layers=2, decoder_num_heads=12),
    "L": PATConfig("PAT-L", patch_size=9, encoder_num_heads=12, encoder_num_layers=4, decoder_num_heads=12),
    "H": PATConfig("PAT-H", patch_size=5, encoder_num_heads=12, encoder_num_layers=8, decoder_num_heads=12),
}


# -- Positional embeddings -----------------------------------------------------------------------


def sinusoidal_positional_embeddings(num_patches: int, embed_dim: int) -> Tensor:
    """Fixed sine/cosine table (§4.1), computed as the official ``get_positional_embeddings``.

    Returns (num_patches, embed_dim) float32: column k < D/2 is ``sin(p * w_k)``, column D/2 + k is
    ``cos(p * w_k)``, with ``w_k = exp(2k * -ln(10000) / D)``. Every step is a float32 operation
    where the official TensorFlow code has one, including its ``exp`` (see
    :func:`tensorflow_float32_exp`), so the angles ``p * w_k`` are the official float32 angles
    bit for bit; only sin and cos (correctly rounded here) may differ by an ulp of the result.
    """
    position = torch.arange(num_patches, dtype=torch.float32)[:, None]  # (patches, 1)
    log_step = torch.tensor(-math.log(10000.0), dtype=torch.float32) / embed_dim
    frequency = tensorflow_float32_exp(torch.arange(0, embed_dim, 2, dtype=torch.float32) * log_step)
    angle = (position * frequency).double()  # (patches, D/2): float32 product, then exact sin/cos
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).float()


def tensorflow_float32_exp(x: Tensor) -> Tensor:
    """``exp`` of float32 values exactly as TensorFlow computes it on CPU (Eigen's ``pexp_float``).

    That is Cephes' range reduction ``x = m ln2 + r`` and a degree-6 polynomial for ``exp(r)``,
    each multiply and add rounded to float32. It is within one ulp of the true value, but not
    correctly rounded: for 10 of PAT's 48 frequencies it differs from ``torch.exp`` by one ulp,
    which turns into up to 1.2e-4 rad at PAT-H's last patches. For |x| < 87 (no clamping).
    """

    def f32(value: float) -> Tensor:
        return torch.tensor(value, dtype=torch.float32)

    x = x.float()
    m = torch.floor(x * f32(1.44269504088896341) + f32(0.5))
    r = m * f32(-0.693359375) + x
    r = m * f32(2.12194440e-4) + r
    r2 = r * r
    p_even = r2 * f32(1.37449637986719608306884765625e-3) + f32(4.166965186595916748046875e-2)
    p_odd = r2 * f32(8.36894474923610687255859375e-3) + f32(0.16666518151760101318359375)
    p_even = r2 * p_even + f32(0.49999988079071044921875)
    y = r * p_odd + p_even
    y = r2 * y + (r + f32(1.0))
    return torch.ldexp(y, m)


# -- Blocks --------------------------------------------------------------------------------------


def keras_linear(in_features: int, out_features: int, fans: tuple[int, int] | None = None) -> nn.Linear:
    """A linear layer initialised as Keras initialises ``Dense`` and ``EinsumDense``: Glorot-uniform
    kernel (fans from the Keras kernel shape, by default (in, out)) and zero bias."""
    layer = nn.Linear(in_features, out_features)
    fan_in, fan_out = fans or (in_features, out_features)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)
    return layer


class MultiHeadAttention(nn.Module):
    """Keras ``MultiHeadAttention`` (self-attention, no mask, no attention dropout), initialised
    as Keras initialises it.

    ``query``/``key``/``value`` map embed_dim -> heads * key_dim; ``attention_output`` maps back.
    Heads are laid out head-major, matching a Keras (embed, heads, key_dim) kernel reshaped to
    (embed, heads * key_dim).
    """

    def __init__(self, embed_dim: int, num_heads: int, key_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        inner = num_heads * key_dim
        # Keras takes the fans of an (embed, heads, key_dim) kernel as of a convolution.
        projection_fans = (num_heads * embed_dim, key_dim * embed_dim)
        self.query = keras_linear(embed_dim, inner, projection_fans)
        self.key = keras_linear(embed_dim, inner, projection_fans)
        self.value = keras_linear(embed_dim, inner, projection_fans)
        self.attention_output = keras_linear(inner, embed_dim, (key_dim * num_heads, embed_dim * num_heads))

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (batch, patches, embed) -> (same shape, weights (batch, heads, patches, patches) or None)."""
        batch, patches, _ = x.shape

        def heads(t: Tensor) -> Tensor:  # (batch, patches, heads*key_dim) -> (batch, heads, patches, key_dim)
            return t.view(batch, patches, self.num_heads, self.key_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        weights: Tensor | None = None
        if need_weights:
            scores = (q * (1.0 / math.sqrt(self.key_dim))) @ k.transpose(-2, -1)  # Keras scales q first
            weights = scores.softmax(dim=-1)  # (batch, heads, patches, patches)
            context = weights @ v
        else:
            context = F.scaled_dot_product_attention(q, k, v)  # same scale, 1/sqrt(key_dim)
        context = context.transpose(1, 2).reshape(batch, patches, self.num_heads * self.key_dim)
        return self.attention_output(context), weights


class EncoderBlock(nn.Module):
    """One transformer block, post-norm as the official ``TransformerBlock`` (§4.1: attention,
    layer norm, feed-forward, layer norm). Used for the encoder and for the MAE decoder."""

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, rate: float, eps: float) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(embed_dim, num_heads, key_dim=embed_dim)
        self.dropout = nn.Dropout(rate)
        self.norm1 = nn.LayerNorm(embed_dim, eps=eps)
        self.ff1 = keras_linear(embed_dim, ff_dim)
        self.ff2 = keras_linear(ff_dim, embed_dim)
        self.dropout2 = nn.Dropout(rate)
        self.norm2 = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (batch, tokens, embed) -> ((batch, tokens, embed), attention weights or None)."""
        attended, weights = self.attention(x, need_weights)
        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout2(self.ff2(F.relu(self.ff1(x)))))
        return x, weights


# -- Encoder -------------------------------------------------------------------------------------


class PATEncoderOutput(NamedTuple):
    tokens: Tensor  # (batch, patches, embed): one vector per patch, the official encoder's output
    embedding: Tensor  # (batch, embed): tokens averaged over patches (GlobalAveragePooling1D)
    attention: tuple[Tensor, ...]  # per block (batch, heads, patches, patches); empty unless asked


class PATEncoder(nn.Module):
    """PAT: patch embedding + fixed positional table + encoder blocks (§4.2, "Fine-tuning")."""

    positional_embeddings: Tensor  # (patches, embed), a buffer: fixed, not trained, not saved

    def __init__(self, config: PATConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embedding = keras_linear(config.patch_size, config.embed_dim)  # Keras "dense"
        self.register_buffer(
            "positional_embeddings",
            sinusoidal_positional_embeddings(config.num_patches, config.embed_dim),  # (patches, embed)
            persistent=False,
        )
        self.blocks = nn.ModuleList(
            EncoderBlock(
                config.embed_dim,
                config.encoder_num_heads,
                config.encoder_ff_dim,
                config.encoder_rate,
                config.layer_norm_eps,
            )
            for _ in range(config.encoder_num_layers)
        )

    def embed_patches(self, x: Tensor) -> Tensor:
        """x (batch, input_size) standardised minutes -> (batch, patches, embed), before positions."""
        if x.dim() != 2 or x.shape[1] != self.config.input_size:
            raise ValueError(
                f"expected input of shape (batch, {self.config.input_size}), got {tuple(x.shape)}"
            )
        # (batch, patches, patch_size)
        patches = x.view(x.shape[0], self.config.num_patches, self.config.patch_size)
        out: Tensor = self.patch_embedding(patches)
        return out

    def transform(self, tokens: Tensor, return_attention: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Run the encoder blocks: (batch, tokens, embed) -> same shape, plus per-block weights."""
        attention: list[Tensor] = []
        for block in self.blocks:
            tokens, weights = block(tokens, return_attention)
            if weights is not None:
                attention.append(weights)
        return tokens, tuple(attention)

    def forward(self, x: Tensor, return_attention: bool = False) -> PATEncoderOutput:
        """x (batch, 10080) standardised minutes of one week each -> :class:`PATEncoderOutput`.

        ``return_attention`` switches from the fused attention kernel to an explicit softmax and
        returns every block's weights (the paper's explainability uses the last block, §4.2).
        """
        tokens = self.embed_patches(x) + self.positional_embeddings  # (batch, patches, embed)
        tokens, attention = self.transform(tokens, return_attention)
        return PATEncoderOutput(tokens, tokens.mean(dim=1), attention)


# -- Masked autoencoder (pretraining, §4.2) ------------------------------------------------------


class PATMaskedAutoencoderOutput(NamedTuple):
    loss: Tensor  # scalar: mean squared error per minute (all minutes, or masked ones only)
    reconstruction: Tensor  # (batch, input_size), in standard deviations, within (-2, 2)
    mask: Tensor  # (num_patches,) bool, True where the patch was hidden from the encoder


class PATMaskedAutoencoder(nn.Module):
    """The asymmetric masked autoencoder PAT is pretrained with (§4.2, Figure 3).

    Patches are embedded, positions added, and ``num_masked`` random patches removed; the encoder
    sees the rest. A learned mask token fills the removed places, the sequence is put back in
    order, positions are added again, one decoder block runs, and ``decoder_dense`` with
    ``2 * tanh`` predicts each patch's minutes (the official code caps the output at 2 SD).

    As in the official ``MaskLayer``, one random permutation is drawn per call and shared by the
    whole batch. Two places follow the paper rather than the official code, whose versions do
    not do what their comments say: ``UnshuffleLayer`` inverts the permutation as if the mask
    tokens came first although they are concatenated after the encoded tokens (so encoded tokens
    land on masked places); here every token returns to its own patch ("realigned", Figure 3).
    The masked-only loss gathers patch indices from the flattened minutes; here
    ``mse_only_masked`` averages over every minute of the masked patches.
    """

    def __init__(self, config: PATConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = PATEncoder(config)
        # Keras "random_normal" initialiser: N(0, 0.05).
        self.mask_token = nn.Parameter(torch.randn(1, 1, config.embed_dim) * 0.05)
        self.decoder_blocks = nn.ModuleList(
            EncoderBlock(
                config.embed_dim,
                config.decoder_num_heads,
                config.decoder_ff_dim,
                config.decoder_rate,
                config.layer_norm_eps,
            )
            for _ in range(config.decoder_num_layers)
        )
        self.decoder_dense = keras_linear(config.embed_dim, config.patch_size)

    def random_mask(self, generator: torch.Generator | None = None) -> Tensor:
        """A permutation of the patches, masked ones first: (num_patches,) int64."""
        return torch.randperm(self.config.num_patches, generator=generator, device=self.mask_token.device)

    def forward(
        self,
        x: Tensor,
        target: Tensor | None = None,
        *,
        shuffle: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PATMaskedAutoencoderOutput:
        """x (batch, input_size) standardised minutes -> loss, reconstruction and mask.

        ``target`` (batch, input_size) defaults to ``x`` (the paper reconstructs its input).
        ``shuffle`` fixes the permutation (masked patches first); otherwise one is drawn with
        ``generator`` (or the global torch RNG).
        """
        config = self.config
        batch = x.shape[0]
        target = x if target is None else target
        if shuffle is None:
            shuffle = self.random_mask(generator)
        elif shuffle.shape != (config.num_patches,):
            raise ValueError(f"shuffle must be a permutation of {config.num_patches} patches")
        masked_index, visible_index = shuffle[: config.num_masked], shuffle[config.num_masked :]

        positions = self.encoder.positional_embeddings  # (patches, embed)
        patch_embeddings = self.encoder.embed_patches(x)  # (batch, patches, embed)
        visible = patch_embeddings[:, visible_index] + positions[visible_index]  # (batch, visible, embed)
        encoded, _ = self.encoder.transform(visible)  # (batch, visible, embed)

        mask_tokens = self.mask_token.expand(batch, config.num_masked, -1)  # (batch, masked, embed)
        shuffled = torch.cat([encoded, mask_tokens], dim=1)  # order: visible, then masked
        order = torch.cat([visible_index, masked_index])  # the patch each shuffled token belongs to
        unshuffle = torch.empty_like(shuffle)
        unshuffle[order] = torch.arange(config.num_patches, device=shuffle.device)
        y = shuffled[:, unshuffle] + positions  # (batch, patches, embed), back in time order
        for block in self.decoder_blocks:
            y, _ = block(y)
        reconstruction = (2.0 * torch.tanh(self.decoder_dense(y))).reshape(batch, config.input_size)

        mask = torch.zeros(config.num_patches, dtype=torch.bool, device=x.device)
        mask[masked_index] = True
        squared_error = (reconstruction - target).square()
        if config.mse_only_masked:
            per_patch = squared_error.view(batch, config.num_patches, config.patch_size)
            loss = per_patch[:, mask].mean()
        else:
            loss = squared_error.mean()
        return PATMaskedAutoencoderOutput(loss, reconstruction, mask)
