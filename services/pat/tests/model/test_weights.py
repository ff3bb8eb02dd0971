"""Weight loading: official ``.h5`` files (and every way they can be wrong), and our artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from novamind.core.errors import ModelNotReadyError
from novamind.pat.model import (
    PAT_SIZES,
    PATConfig,
    PATEncoder,
    PATMaskedAutoencoder,
    infer_official_config,
    load_official_h5,
    read_artifact,
    write_artifact,
)

WriteOfficial = Callable[[PATEncoder, Path], Path]  # the conftest fixture ``write_official``


def _random_encoder(size: str, seed: int = 0) -> PATEncoder:
    torch.manual_seed(seed)
    encoder = PATEncoder(PATConfig.for_size(size))
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))  # non-trivial biases and norm scales
    return encoder.eval()


@pytest.fixture
def pat_s_file(tmp_path: Path, write_official: WriteOfficial) -> Path:
    return write_official(_random_encoder("S"), tmp_path / "PAT-S_29k_weights.h5")


def _raises_not_ready(path: Path, config: PATConfig, *problem: str) -> ModelNotReadyError:
    with pytest.raises(ModelNotReadyError) as caught:
        load_official_h5(path, config)
    error = caught.value
    assert error.field == path.name
    assert path.name in error.message
    for words in problem:
        assert words in error.message, error.message
    return error


# -- Official files: the happy path --------------------------------------------------------------


@pytest.mark.parametrize("size", ["S", "M", "L", "H"])
def test_official_layout_round_trips_every_size(
    size: str, tmp_path: Path, write_official: WriteOfficial
) -> None:
    encoder = _random_encoder(size)
    path = write_official(encoder, tmp_path / f"PAT-{size}_29k_weights.h5")

    loaded = load_official_h5(path, PATConfig.for_size(size))

    assert not loaded.training
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert infer_official_config(path) == PATConfig.for_size(size)


def test_a_whole_model_file_with_model_weights_group_loads(
    tmp_path: Path, write_official: WriteOfficial
) -> None:
    encoder = _random_encoder("M")
    flat = write_official(encoder, tmp_path / "flat.h5")
    nested = tmp_path / "encoder_medium_90_unsmoothed_mse_all.h5"
    with h5py.File(flat, "r") as source, h5py.File(nested, "w") as target:
        target.attrs["model_config"] = "{}"
        for name in source:
            source.copy(source[name], target.require_group("model_weights"), name=name)

    loaded = load_official_h5(nested, PAT_SIZES["M"])

    assert torch.equal(loaded.blocks[1].ff2.weight, encoder.blocks[1].ff2.weight)


# -- Official files: every way they can be wrong -------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    _raises_not_ready(tmp_path / "PAT-S_29k_weights.h5", PAT_SIZES["S"], "not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "PAT-S_29k_weights.h5"
    path.touch()

    _raises_not_ready(path, PAT_SIZES["S"], "empty")


def test_truncated_file(pat_s_file: Path) -> None:
    data = pat_s_file.read_bytes()
    pat_s_file.write_bytes(data[: len(data) // 2])

    _raises_not_ready(pat_s_file, PAT_SIZES["S"], "not a readable HDF5 file", "truncated or corrupt")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "PAT-S_29k_weights.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))

    _raises_not_ready(path, PAT_SIZES["S"], "not a readable HDF5 file")


def test_hdf5_file_without_weights(tmp_path: Path) -> None:
    path = tmp_path / "notes.h5"
    with h5py.File(path, "w") as f:
        f.create_group("empty")

    _raises_not_ready(path, PAT_SIZES["S"], "contains no weights")


def test_hdf5_file_with_other_weights(tmp_path: Path) -> None:
    path = tmp_path / "resnet.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("conv1/conv1/kernel:0", data=np.zeros((3, 3, 3, 8), np.float32))

    _raises_not_ready(path, PAT_SIZES["S"], "holds no PAT encoder")


def test_file_for_another_size(tmp_path: Path, write_official: WriteOfficial) -> None:
    path = write_official(_random_encoder("M"), tmp_path / "PAT-M_29k_weights.h5")

    _raises_not_ready(path, PAT_SIZES["S"], "holds a PAT-M encoder", "the configuration is PAT-S")
    _raises_not_ready(path, PAT_SIZES["L"], "holds a PAT-M encoder", "patch 18 min", "configuration is PAT-L")


def test_missing_encoder_block(tmp_path: Path, write_official: WriteOfficial) -> None:
    path = write_official(_random_encoder("M"), tmp_path / "PAT-M_29k_weights.h5")
    with h5py.File(path, "a") as f:
        del f["encoder_layer_2_transformer"]

    _raises_not_ready(path, PAT_SIZES["M"], "layer 'encoder_layer_2_attention' is missing")


def test_missing_layer(pat_s_file: Path) -> None:
    with h5py.File(pat_s_file, "a") as f:
        del f["encoder_layer_1_transformer/encoder_layer_1_ff2"]

    _raises_not_ready(pat_s_file, PAT_SIZES["S"], "layer 'encoder_layer_1_ff2' is missing")


def test_missing_patch_embedding(pat_s_file: Path) -> None:
    with h5py.File(pat_s_file, "a") as f:
        del f["dense"]

    _raises_not_ready(pat_s_file, PAT_SIZES["S"], "layer 'dense' is missing")


def test_wrong_shape(pat_s_file: Path) -> None:
    name = "encoder_layer_1_transformer/encoder_layer_1_ff1/kernel:0"
    with h5py.File(pat_s_file, "a") as f:
        del f[name]
        f.create_dataset(name, data=np.zeros((96, 255), np.float32))

    _raises_not_ready(
        pat_s_file,
        PAT_SIZES["S"],
        "'encoder_layer_1_ff1/kernel' has shape (96, 255)",
        "PAT-S expects (96, 256)",
    )


def test_non_finite_weights(pat_s_file: Path) -> None:
    with h5py.File(pat_s_file, "a") as f:
        f["dense/dense/bias:0"][3] = np.nan

    _raises_not_ready(pat_s_file, PAT_SIZES["S"], "'dense/bias' holds non-finite values")


def test_conv_encoder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "conv_encoder_small_90_unsmoothed_mse_all.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("conv1d_patch_embedding/conv1d/kernel:0", data=np.zeros((3, 1, 96), np.float32))

    _raises_not_ready(path, PAT_SIZES["S"], "PAT Conv encoder")


def test_infer_official_config_rejects_an_unpublished_shape(
    tmp_path: Path, write_official: WriteOfficial
) -> None:
    path = write_official(
        PATEncoder(PATConfig("PAT-XS", patch_size=30, encoder_num_heads=2, encoder_num_layers=1)),
        tmp_path / "xs.h5",
    )

    with pytest.raises(ModelNotReadyError, match="none of the published PAT sizes") as caught:
        infer_official_config(path)
    assert caught.value.field == "xs.h5"


# -- Our artifacts -------------------------------------------------------------------------------

MANIFEST = {
    "name": "pat-s-novamind",
    "version": "2026.1.0",
    "training": {"objective": "masked autoencoder, MSE on all minutes", "epochs": 3, "seed": 7},
    "data": {"dataset": "synthetic weeks", "standardisation": "per-minute-of-week z-score"},
    "quality": {"validation_mse": 0.81},
}


@pytest.mark.parametrize("architecture", [PATEncoder, PATMaskedAutoencoder])
def test_artifact_round_trip(
    architecture: type[PATEncoder] | type[PATMaskedAutoencoder], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = architecture(PAT_SIZES["S"]).eval()

    written = write_artifact(tmp_path / "artifact", model, MANIFEST)
    loaded, manifest = read_artifact(tmp_path / "artifact")

    assert type(loaded) is architecture and not loaded.training
    assert manifest == written and manifest.config == PAT_SIZES["S"]
    assert manifest.architecture == architecture.__name__
    document = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert {k: document[k] for k in MANIFEST} == MANIFEST
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_artifact_with_tampered_weights_is_not_ready(tmp_path: Path) -> None:
    write_artifact(tmp_path, PATEncoder(PAT_SIZES["S"]), MANIFEST)
    weights = tmp_path / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    with pytest.raises(ModelNotReadyError, match=r"sha256 \w+ does not match the manifest") as caught:
        read_artifact(tmp_path)
    assert caught.value.field == "weights.pt"


def test_artifact_without_weights_or_manifest_is_not_ready(tmp_path: Path) -> None:
    with pytest.raises(ModelNotReadyError, match=r"'manifest\.json': not found") as caught:
        read_artifact(tmp_path)
    assert caught.value.field == "manifest.json"

    write_artifact(tmp_path, PATEncoder(PAT_SIZES["S"]), MANIFEST)
    (tmp_path / "weights.pt").unlink()
    with pytest.raises(ModelNotReadyError, match=r"'weights\.pt': not found"):
        read_artifact(tmp_path)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda m: m.pop("sha256"), "malformed manifest"),
        (lambda m: m.update(sha256="abc"), "not 64 hex digits"),
        (lambda m: m.update(architecture="GPT"), "unknown architecture"),
        (lambda m: m["config"].update(depth=3), "malformed manifest"),
    ],
)
def test_malformed_manifest_is_not_ready(edit: object, problem: str, tmp_path: Path) -> None:
    write_artifact(tmp_path, PATEncoder(PAT_SIZES["S"]), MANIFEST)
    path = tmp_path / "manifest.json"
    document = json.loads(path.read_text())
    edit(document)  # type: ignore[operator]
    path.write_text(json.dumps(document))

    with pytest.raises(ModelNotReadyError, match=problem) as caught:
        read_artifact(tmp_path)
    assert caught.value.field == "manifest.json"


def test_manifest_that_is_not_json_is_not_ready(tmp_path: Path) -> None:
    write_artifact(tmp_path, PATEncoder(PAT_SIZES["S"]), MANIFEST)
    (tmp_path / "manifest.json").write_text("{not json")

    with pytest.raises(ModelNotReadyError, match="malformed manifest"):
        read_artifact(tmp_path)


def test_artifact_whose_config_does_not_fit_its_weights_is_not_ready(tmp_path: Path) -> None:
    write_artifact(tmp_path, PATEncoder(PAT_SIZES["S"]), MANIFEST)
    path = tmp_path / "manifest.json"
    document = json.loads(path.read_text())
    document["config"]["encoder_num_heads"] = 12  # the PAT-S weights have 6 heads
    path.write_text(json.dumps(document))

    with pytest.raises(
        ModelNotReadyError, match=r"'blocks\.0\.attention\.query\.weight' has shape \(576, 96\)"
    ) as caught:
        read_artifact(tmp_path)
    assert caught.value.field == "weights.pt"


def test_write_artifact_requires_exactly_the_manifest_fields(tmp_path: Path) -> None:
    encoder = PATEncoder(PAT_SIZES["S"])

    with pytest.raises(ValueError, match=r"missing \['quality'\]"):
        write_artifact(tmp_path, encoder, {k: v for k, v in MANIFEST.items() if k != "quality"})
    with pytest.raises(ValueError, match=r"unknown \['notes'\]"):
        write_artifact(tmp_path, encoder, {**MANIFEST, "notes": "x"})
