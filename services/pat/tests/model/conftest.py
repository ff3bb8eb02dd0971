"""Fixtures for the PAT model tests: real weeks of activity, and official-layout weight files.

The recordings stay in the shared data folder next to the repository
(``../shared/data/actigraphy``); tests that need them are skipped when it is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pytest

from novamind.pat.model import PATEncoder

#: parents[4] is the repository root (services/pat/tests/model/conftest.py).
ACTIGRAPHY_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "actigraphy"
RECORDINGS = ("example_01.AWD", "example_02.AWD", "example_03.AWD")
MINUTES_PER_WEEK = 10_080

WriteOfficial = Callable[[PATEncoder, Path], Path]


@pytest.fixture(scope="session")
def real_weeks() -> npt.NDArray[np.float32]:
    """(3, 10080) float32: the first 10,080 minutes of each example recording, z-scored per week."""
    if not all((ACTIGRAPHY_DIR / name).is_file() for name in RECORDINGS):
        pytest.skip(f"real actigraphy recordings not found at {ACTIGRAPHY_DIR} (../shared/data/actigraphy)")
    from novamind.pat.readers import read_recording

    weeks = []
    for name in RECORDINGS:
        recording = read_recording(ACTIGRAPHY_DIR / name)
        assert recording.epoch_seconds == 60, f"{name}: expected one-minute epochs"
        counts = recording.counts()[:MINUTES_PER_WEEK]
        assert counts.size == MINUTES_PER_WEEK and not np.isnan(counts).any(), f"{name}: no complete week"
        weeks.append((counts - counts.mean()) / counts.std())
    return np.stack(weeks).astype(np.float32)


def write_official_layout(encoder: PATEncoder, path: Path) -> Path:
    """Write ``encoder``'s weights in the layout of the official ``PAT-*_29k_weights.h5`` files
    (Keras 2 ``save_weights``: ``dense/dense/kernel:0``, ``encoder_layer_1_transformer/...``)."""
    config = encoder.config
    d, h, k = config.embed_dim, config.encoder_num_heads, config.key_dim

    def numpy(t: object) -> npt.NDArray[np.float32]:
        return np.asarray(t.detach().numpy(), dtype=np.float32)  # type: ignore[attr-defined]

    layers: dict[str, dict[str, npt.NDArray[np.float32]]] = {
        "dense": {
            "dense/kernel:0": numpy(encoder.patch_embedding.weight).T,
            "dense/bias:0": numpy(encoder.patch_embedding.bias),
        }
    }
    for i, block in enumerate(encoder.blocks, start=1):
        p = f"encoder_layer_{i}"
        weights: dict[str, npt.NDArray[np.float32]] = {}
        for name in ("query", "key", "value"):
            linear = getattr(block.attention, name)
            weights[f"{p}_attention/{name}/kernel:0"] = numpy(linear.weight).T.reshape(d, h, k)
            weights[f"{p}_attention/{name}/bias:0"] = numpy(linear.bias).reshape(h, k)
        out = block.attention.attention_output
        weights[f"{p}_attention/attention_output/kernel:0"] = numpy(out.weight).T.reshape(h, k, d)
        weights[f"{p}_attention/attention_output/bias:0"] = numpy(out.bias)
        for norm in ("norm1", "norm2"):
            weights[f"{p}_{norm}/gamma:0"] = numpy(getattr(block, norm).weight)
            weights[f"{p}_{norm}/beta:0"] = numpy(getattr(block, norm).bias)
        for ff in ("ff1", "ff2"):
            weights[f"{p}_{ff}/kernel:0"] = numpy(getattr(block, ff).weight).T
            weights[f"{p}_{ff}/bias:0"] = numpy(getattr(block, ff).bias)
        layers[f"{p}_transformer"] = weights
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"inputs", b"reshape", *(name.encode() for name in layers)])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer, weights in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = np.array([name.encode() for name in weights])
            for name, value in weights.items():
                group.create_dataset(name, data=value)
    return path


@pytest.fixture
def write_official() -> WriteOfficial:
    return write_official_layout
