"""Fidelity: the PyTorch PAT reproduces the official Keras architecture on real recordings.

For every size a Keras 3 reference built with the official layer names (``keras_reference``) gets
seeded random weights (non-zero biases, non-unit norm scales), which are saved in the official
file layout, loaded with ``load_official_h5`` and compared on three real weeks (two for PAT-H),
z-scored per week, in eval mode and float32.

TensorFlow is imported once, here; the reference is built once per size (module fixture).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import torch

from novamind.pat.model import PATConfig, PATEncoder, load_official_h5
from novamind.pat.model.pat import tensorflow_float32_exp

tf = pytest.importorskip("tensorflow", reason="TensorFlow (the Keras reference) is not installed")
kr: ModuleType = importlib.import_module("novamind.pat.model.keras_reference")
try:  # two threads spin less on small CI machines; refused once TensorFlow has started
    tf.config.threading.set_intra_op_parallelism_threads(max(1, min(2, os.cpu_count() or 1)))
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
)

SEED = 2411_15240
TOLERANCE = 1e-4  # max-abs, the acceptance bar for official-weight fidelity
#: Sizes whose attention scores are also compared (PAT-L/H score tensors are 0.7-1.6 GB).
ATTENTION_SIZES = ("S", "M")


@dataclass
class Reference:
    config: PATConfig
    keras_encoder: Any
    weeks: npt.NDArray[np.float32]
    tokens: npt.NDArray[np.float32]  # (batch, patches, embed)
    embedding: npt.NDArray[np.float32]  # (batch, embed)
    attention: list[npt.NDArray[np.float32]]  # per block (batch, heads, patches, patches), or []
    official_file: Path


@pytest.fixture(scope="module", params=["S", "M", "L", "H"])
def reference(
    request: pytest.FixtureRequest,
    real_weeks: npt.NDArray[np.float32],
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    size: str = request.param
    config = PATConfig.for_size(size)
    weeks = real_weeks[:2] if size == "H" else real_weeks
    with_attention = size in ATTENTION_SIZES
    encoder = kr.build_encoder(config, return_attention=with_attention)
    kr.randomize_weights(encoder, SEED)
    tokens, embedding = kr.predict(kr.build_embedding_model(encoder), weeks)
    attention = kr.predict(encoder, weeks)[1:] if with_attention else []
    official_file = tmp_path_factory.mktemp(f"pat_{size}") / f"PAT-{size}_29k_weights.h5"
    kr.save_official_weights(encoder, official_file)
    return Reference(config, encoder, weeks, tokens, embedding, attention, official_file)


def _run(encoder: PATEncoder, weeks: npt.NDArray[np.float32], *, attention: bool = False) -> Any:
    with torch.inference_mode():
        return encoder(torch.from_numpy(weeks), return_attention=attention)


def _max_abs(a: torch.Tensor, b: npt.NDArray[np.float32]) -> float:
    return float(np.abs(a.numpy() - b).max())


def test_official_weights_reproduce_the_keras_reference_on_real_weeks(reference: Reference) -> None:
    encoder = load_official_h5(reference.official_file, reference.config)

    out = _run(encoder, reference.weeks)

    tokens_error = _max_abs(out.tokens, reference.tokens)
    embedding_error = _max_abs(out.embedding, reference.embedding)
    assert tokens_error < TOLERANCE, f"{reference.config.name} tokens max-abs {tokens_error:.2e}"
    assert embedding_error < TOLERANCE, f"{reference.config.name} embedding max-abs {embedding_error:.2e}"


def test_positional_table_matches_tensorflow(reference: Reference) -> None:
    config = reference.config
    table = np.asarray(kr.get_positional_embeddings(config.num_patches, config.embed_dim))
    ours = PATEncoder(config).positional_embeddings.numpy()

    # Same float32 angles; sin and cos may round the other way (one ulp of the result).
    assert np.abs(ours - table).max() <= 2.5e-7


def test_frequencies_use_tensorflows_float32_exp_bit_for_bit() -> None:
    x = np.linspace(-80.0, 80.0, 200_001, dtype=np.float32)

    ours = tensorflow_float32_exp(torch.from_numpy(x)).numpy()

    np.testing.assert_array_equal(ours, tf.exp(x).numpy())


@pytest.mark.parametrize("reference", ATTENTION_SIZES, indirect=True)
def test_attention_weights_match_the_keras_scores(reference: Reference) -> None:
    encoder = load_official_h5(reference.official_file, reference.config)

    out = _run(encoder, reference.weeks, attention=True)

    assert len(out.attention) == len(reference.attention) == reference.config.encoder_num_layers
    for ours, theirs in zip(out.attention, reference.attention, strict=True):
        assert ours.shape == theirs.shape
        assert _max_abs(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("reference", ["M"], indirect=True)
def test_keras_3_files_load_the_same_weights_as_the_official_layout(
    reference: Reference, tmp_path: Path
) -> None:
    expected = load_official_h5(reference.official_file, reference.config).state_dict()
    weights_file = tmp_path / "encoder.weights.h5"
    model_file = tmp_path / "encoder_medium_90_unsmoothed_mse_all.h5"
    reference.keras_encoder.save_weights(weights_file)  # Keras 3 layers/<object>/vars/<i>
    reference.keras_encoder.save(model_file)  # legacy whole model: model_weights/<layer>/...

    for path in (weights_file, model_file):
        loaded = load_official_h5(path, reference.config).state_dict()
        for name, tensor in expected.items():
            assert torch.equal(loaded[name], tensor), f"{path.name}: {name}"


def test_official_layout_has_the_keras_2_names(reference: Reference) -> None:
    with h5py.File(reference.official_file, "r") as f:
        names = set()
        f.visititems(lambda name, item: names.add(name) if isinstance(item, h5py.Dataset) else None)
        layer_names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]

    n = reference.config.encoder_num_layers
    assert layer_names[-(n + 1) :] == ["dense", *(f"encoder_layer_{i}_transformer" for i in range(1, n + 1))]
    assert "dense/dense/kernel:0" in names
    assert f"encoder_layer_{n}_transformer/encoder_layer_{n}_attention/query/kernel:0" in names
    assert f"encoder_layer_{n}_transformer/encoder_layer_{n}_norm2/gamma:0" in names
    assert len(names) == 2 + 16 * n
