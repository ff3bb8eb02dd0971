"""Loading PAT weights: the official Keras encoder files, and our own verified PyTorch artifacts.

Official files (``PAT-S_29k_weights.h5`` ... from ``njacobsonlab/Pretrained-Actigraphy-Transformer``)
are read with h5py, by Keras layer name, in any of the layouts Keras writes:

* Keras 2 ``save_weights`` (the official files): ``dense/dense/kernel:0``,
  ``encoder_layer_1_transformer/encoder_layer_1_attention/query/kernel:0``, ...
* a whole model saved to ``.h5`` (Keras 2 or 3): the same under ``model_weights/``, with or
  without the ``:0`` suffix;
* Keras 3 ``save_weights("x.weights.h5")``: ``layers/<object>/vars/<index>`` groups whose ``vars``
  carry the layer name.

Our own artifacts (pretrained or fine-tuned here) are a directory holding ``weights.pt`` (a
PyTorch state dict) and ``manifest.json`` (name, version, sha256, config, how it was trained, on
what data, how good it is); the sha256 is checked before the weights are read.

Every failure raises :class:`~novamind.core.errors.ModelNotReadyError` whose ``field`` is the
file's name and whose message says what is wrong, so the service reports itself not ready
instead of serving random weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import torch

from novamind.core.errors import ModelNotReadyError
from novamind.pat.model.pat import PAT_SIZES, PATConfig, PATEncoder, PATMaskedAutoencoder

FloatArray = npt.NDArray[np.float32]
_Key = tuple[str, ...]

# -- Official Keras encoder files ----------------------------------------------------------------


def load_official_h5(path: str | os.PathLike[str], config: PATConfig) -> PATEncoder:
    """Build a :class:`PATEncoder` for ``config`` with the weights of an official ``.h5`` file.

    Returns the encoder in eval mode. Raises ModelNotReadyError (``field`` = the file's name) when
    the file is missing, empty, not HDF5, truncated or corrupt, holds no PAT encoder, holds another
    size or architecture than ``config``, lacks a layer, has a weight of the wrong shape, or holds
    non-finite values.
    """
    file = Path(path)
    weights = _read_h5(file)
    _check_architecture(file, weights, config)
    state: dict[str, torch.Tensor] = {}
    for torch_name, keras_key, expected_shape, convert in _encoder_mapping(config):
        value = _lookup(file, weights, keras_key)
        if value.shape != expected_shape:
            raise _not_ready(
                file,
                f"weight '{'/'.join(keras_key)}' has shape {value.shape}, "
                f"{config.name} expects {expected_shape}",
            )
        if not np.isfinite(value).all():
            raise _not_ready(file, f"weight '{'/'.join(keras_key)}' holds non-finite values")
        state[torch_name] = torch.from_numpy(np.ascontiguousarray(convert(value)))
    encoder = PATEncoder(config)
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()


def infer_official_config(path: str | os.PathLike[str]) -> PATConfig:
    """The published size an official ``.h5`` file holds, read from its weight shapes.

    Raises ModelNotReadyError when the file cannot be read or matches none of PAT-S/M/L/H.
    """
    file = Path(path)
    found = _Architecture.of(_read_h5(file))
    config = found.preset()
    if config is None:
        raise _not_ready(file, f"holds {found.describe()}, which is none of the published PAT sizes")
    return config


def _not_ready(file: Path, problem: str) -> ModelNotReadyError:
    return ModelNotReadyError(f"PAT weights file '{file.name}': {problem}", field=file.name)


def _read_h5(file: Path) -> dict[_Key, FloatArray]:
    """Every weight in the file, keyed by its Keras name split at '/' (':0' dropped)."""
    if not file.is_file():
        raise _not_ready(file, f"not found at {file}")
    if file.stat().st_size == 0:
        raise _not_ready(file, "the file is empty")
    try:
        with h5py.File(file, "r") as f:
            items = _keras3_weights(f) if _is_keras3_weights_file(f) else _legacy_weights(f)
            weights = {key: np.asarray(dataset[()], dtype=np.float32) for key, dataset in items}
    except OSError as exc:
        raise _not_ready(file, f"not a readable HDF5 file (truncated or corrupt): {exc}") from exc
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise _not_ready(file, f"corrupt HDF5 content: {exc}") from exc
    if not weights:
        raise _not_ready(file, "contains no weights (not a Keras weights file)")
    return weights


def _is_keras3_weights_file(f: h5py.File) -> bool:
    return isinstance(f.get("layers"), h5py.Group) and isinstance(f.get("vars"), h5py.Group)


def _legacy_weights(f: h5py.File) -> Iterator[tuple[_Key, h5py.Dataset]]:
    """Keras 2 ``save_weights`` or ``save`` (``model_weights/``) layout: dataset path = name."""
    root = f["model_weights"] if isinstance(f.get("model_weights"), h5py.Group) else f
    found: list[tuple[_Key, h5py.Dataset]] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            parts = name.split("/")
            parts[-1] = parts[-1].removesuffix(":0")
            found.append((tuple(parts), item))

    root.visititems(visit)
    return iter(found)


def _keras3_weights(f: h5py.File) -> Iterator[tuple[_Key, h5py.Dataset]]:
    """Keras 3 ``.weights.h5`` layout: ``vars`` groups hold indexed variables and the layer name."""

    def walk(group: h5py.Group, chain: _Key) -> Iterator[tuple[_Key, h5py.Dataset]]:
        variables = group.get("vars")
        if isinstance(variables, h5py.Group) and group.name != "/":
            name = variables.attrs.get("name", group.name.rsplit("/", 1)[-1])
            chain = (*chain, name.decode() if isinstance(name, bytes) else str(name))
            datasets = [
                variables[k] for k in sorted(variables, key=int) if isinstance(variables[k], h5py.Dataset)
            ]
            # Dense and EinsumDense store (kernel, bias); LayerNormalization (gamma, beta).
            names = ("gamma", "beta") if datasets and datasets[0].ndim == 1 else ("kernel", "bias")
            for leaf, dataset in zip(names, datasets, strict=False):
                yield (*chain, leaf), dataset
        for key, child in group.items():
            if key != "vars" and isinstance(child, h5py.Group):
                yield from walk(child, chain)

    return walk(f, ())


def _lookup(file: Path, weights: Mapping[_Key, FloatArray], suffix: _Key) -> FloatArray:
    """The one weight whose name ends with the components ``suffix``."""
    matches = [key for key in weights if key[-len(suffix) :] == suffix]
    if not matches:
        raise _not_ready(file, f"layer '{suffix[0]}' is missing (no weight '{'/'.join(suffix)}')")
    if len(matches) > 1:
        names = ", ".join("/".join(m) for m in matches)
        raise _not_ready(file, f"weight '{'/'.join(suffix)}' is ambiguous ({names})")
    return weights[matches[0]]


_ENCODER_LAYER: Final = re.compile(r"encoder_layer_(\d+)_(?:attention|norm1|norm2|ff1|ff2)")


@dataclass(frozen=True)
class _Architecture:
    """What an official file's weight shapes say about the model that wrote it."""

    patch_size: int | None
    embed_dim: int | None
    num_heads: int | None
    num_layers: int
    conv_patch_embedding: bool

    @classmethod
    def of(cls, weights: Mapping[_Key, FloatArray]) -> _Architecture:
        dense = [v for k, v in weights.items() if k[-2:] == ("dense", "kernel")]
        query = [v for k, v in weights.items() if k[-3:] == ("encoder_layer_1_attention", "query", "kernel")]
        layers = {int(m.group(1)) for key in weights for part in key if (m := _ENCODER_LAYER.fullmatch(part))}
        return cls(
            patch_size=int(dense[0].shape[0]) if len(dense) == 1 and dense[0].ndim == 2 else None,
            embed_dim=int(dense[0].shape[1]) if len(dense) == 1 and dense[0].ndim == 2 else None,
            num_heads=int(query[0].shape[1]) if len(query) == 1 and query[0].ndim == 3 else None,
            num_layers=max(layers, default=0),
            conv_patch_embedding=any("conv1d_patch_embedding" in key for key in weights),
        )

    def preset(self) -> PATConfig | None:
        for config in PAT_SIZES.values():
            if (self.patch_size, self.embed_dim, self.num_heads, self.num_layers) == (
                config.patch_size,
                config.embed_dim,
                config.encoder_num_heads,
                config.encoder_num_layers,
            ):
                return config
        return None

    def describe(self) -> str:
        preset = self.preset()
        shape = (
            f"patch {self.patch_size} min, embed {self.embed_dim}, "
            f"{self.num_heads} heads, {self.num_layers} encoder layers"
        )
        return f"a {preset.name} encoder ({shape})" if preset else f"an encoder with {shape}"


def _describe_config(config: PATConfig) -> str:
    return (
        f"{config.name} (patch {config.patch_size} min, embed {config.embed_dim}, "
        f"{config.encoder_num_heads} heads, {config.encoder_num_layers} encoder layers)"
    )


def _check_architecture(file: Path, weights: Mapping[_Key, FloatArray], config: PATConfig) -> None:
    found = _Architecture.of(weights)
    if found.conv_patch_embedding and found.patch_size is None:
        raise _not_ready(
            file, "holds a PAT Conv encoder (convolutional patch embedding), which is not supported"
        )
    if found.patch_size is None and found.num_layers == 0:
        raise _not_ready(file, "holds no PAT encoder (no layer 'dense' and no 'encoder_layer_*')")
    mismatch = (
        (found.patch_size is not None and found.patch_size != config.patch_size)
        or (found.embed_dim is not None and found.embed_dim != config.embed_dim)
        or (found.num_heads is not None and found.num_heads != config.encoder_num_heads)
        or found.num_layers > config.encoder_num_layers
    )
    if mismatch:
        raise _not_ready(
            file, f"holds {found.describe()}, but the configuration is {_describe_config(config)}"
        )


_Convert = Callable[[FloatArray], FloatArray]


def _encoder_mapping(config: PATConfig) -> Iterator[tuple[str, _Key, tuple[int, ...], _Convert]]:
    """(PyTorch parameter, Keras weight name, Keras shape, Keras -> PyTorch conversion) for every
    encoder weight. Keras kernels are (in, out), PyTorch weights (out, in); attention kernels are
    (embed, heads, key_dim) for query/key/value and (heads, key_dim, embed) for the output."""
    d, h, k, ff = config.embed_dim, config.encoder_num_heads, config.key_dim, config.encoder_ff_dim

    def transpose(w: FloatArray) -> FloatArray:
        return w.T

    def same(w: FloatArray) -> FloatArray:
        return w

    def qkv_kernel(w: FloatArray) -> FloatArray:
        return w.reshape(d, h * k).T

    def qkv_bias(w: FloatArray) -> FloatArray:
        return w.reshape(h * k)

    def output_kernel(w: FloatArray) -> FloatArray:
        return w.reshape(h * k, d).T

    yield "patch_embedding.weight", ("dense", "kernel"), (config.patch_size, d), transpose
    yield "patch_embedding.bias", ("dense", "bias"), (d,), same
    for i in range(config.encoder_num_layers):
        layer, prefix = f"encoder_layer_{i + 1}", f"blocks.{i}"
        attention = f"{layer}_attention"
        for projection in ("query", "key", "value"):
            torch_name, keras_name = f"{prefix}.attention.{projection}", (attention, projection)
            yield f"{torch_name}.weight", (*keras_name, "kernel"), (d, h, k), qkv_kernel
            yield f"{torch_name}.bias", (*keras_name, "bias"), (h, k), qkv_bias
        out = "attention_output"
        yield f"{prefix}.attention.{out}.weight", (attention, out, "kernel"), (h, k, d), output_kernel
        yield f"{prefix}.attention.{out}.bias", (attention, out, "bias"), (d,), same
        for norm in ("norm1", "norm2"):
            yield f"{prefix}.{norm}.weight", (f"{layer}_{norm}", "gamma"), (d,), same
            yield f"{prefix}.{norm}.bias", (f"{layer}_{norm}", "beta"), (d,), same
        yield f"{prefix}.ff1.weight", (f"{layer}_ff1", "kernel"), (d, ff), transpose
        yield f"{prefix}.ff1.bias", (f"{layer}_ff1", "bias"), (ff,), same
        yield f"{prefix}.ff2.weight", (f"{layer}_ff2", "kernel"), (ff, d), transpose
        yield f"{prefix}.ff2.bias", (f"{layer}_ff2", "bias"), (d,), same


# -- Our own artifacts ---------------------------------------------------------------------------

MANIFEST_FILE: Final = "manifest.json"
WEIGHTS_FILE: Final = "weights.pt"
_ARCHITECTURES: Final[Mapping[str, type[PATEncoder] | type[PATMaskedAutoencoder]]] = {
    "PATEncoder": PATEncoder,
    "PATMaskedAutoencoder": PATMaskedAutoencoder,
}
#: The fields a caller of :func:`write_artifact` provides; the rest are filled in.
MANIFEST_FIELDS: Final = ("name", "version", "training", "data", "quality")


@dataclass(frozen=True)
class ArtifactManifest:
    """What ``manifest.json`` says about one trained PAT artifact.

    ``training`` says how it was trained (objective, epochs, optimiser, seed ...), ``data`` on
    what (data set, cohort, standardisation), ``quality`` how good it is (validation loss, AUC
    ...): free-form JSON objects, kept as written.
    """

    name: str
    version: str
    architecture: str  # "PATEncoder" or "PATMaskedAutoencoder"
    config: PATConfig
    sha256: str  # of the weights file
    training: Mapping[str, Any]
    data: Mapping[str, Any]
    quality: Mapping[str, Any]
    weights_file: str = WEIGHTS_FILE

    def to_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["config"] = dataclasses.asdict(self.config)
        return document


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_torch_checkpoint(model: PATEncoder | PATMaskedAutoencoder, path: str | os.PathLike[str]) -> str:
    """Write ``model``'s state dict to ``path`` (atomically) and return the file's sha256."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    torch.save({name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}, partial)
    partial.replace(target)
    return sha256_of(target)


def load_torch_checkpoint(
    path: str | os.PathLike[str], model: PATEncoder | PATMaskedAutoencoder, expected_sha256: str
) -> PATEncoder | PATMaskedAutoencoder:
    """Load a checkpoint written by :func:`save_torch_checkpoint` into ``model`` (eval mode).

    The file's sha256 must equal ``expected_sha256`` before it is read. Raises ModelNotReadyError
    (``field`` = the file's name) when it is missing, does not match, cannot be read, or does
    not fit the model's architecture.
    """
    file = Path(path)
    if not file.is_file():
        raise _not_ready(file, f"not found at {file}")
    actual = sha256_of(file)
    if actual != expected_sha256.lower():
        raise _not_ready(file, f"sha256 {actual} does not match the manifest's {expected_sha256}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise _not_ready(file, f"not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(state, dict):
        raise _not_ready(file, "does not hold a state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise _not_ready(
            file, f"does not fit {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise _not_ready(
                file, f"weight '{name}' has shape {tuple(state[name].shape)}, expected {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.eval()


def write_artifact(
    directory: str | os.PathLike[str],
    model: PATEncoder | PATMaskedAutoencoder,
    manifest_fields: Mapping[str, Any],
) -> ArtifactManifest:
    """Save ``model`` as an artifact: ``weights.pt`` plus ``manifest.json`` in ``directory``.

    ``manifest_fields`` must hold exactly ``name``, ``version``, ``training``, ``data`` and
    ``quality`` (JSON-serialisable); the architecture, config and sha256 are added. Raises
    ValueError for missing or unknown fields.
    """
    missing = [f for f in MANIFEST_FIELDS if f not in manifest_fields]
    unknown = sorted(set(manifest_fields) - set(MANIFEST_FIELDS))
    if missing or unknown:
        raise ValueError(f"manifest fields: missing {missing}, unknown {unknown}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    digest = save_torch_checkpoint(model, folder / WEIGHTS_FILE)
    manifest = ArtifactManifest(
        name=str(manifest_fields["name"]),
        version=str(manifest_fields["version"]),
        architecture=type(model).__name__,
        config=model.config,
        sha256=digest,
        training=dict(manifest_fields["training"]),
        data=dict(manifest_fields["data"]),
        quality=dict(manifest_fields["quality"]),
    )
    partial = folder / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    partial.replace(folder / MANIFEST_FILE)
    return manifest


def read_artifact(
    directory: str | os.PathLike[str],
) -> tuple[PATEncoder | PATMaskedAutoencoder, ArtifactManifest]:
    """Load an artifact written by :func:`write_artifact`: the model (eval mode) and its manifest.

    Raises ModelNotReadyError (``field`` = the offending file's name) when the manifest is
    missing or malformed, or the weights are missing, do not match the sha256, or do not fit.
    """
    folder = Path(directory)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise _not_ready(manifest_path, f"not found at {manifest_path}")
    try:
        document = json.loads(manifest_path.read_text())
        manifest = _manifest_from_json(document)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise _not_ready(manifest_path, f"malformed manifest: {exc}") from exc
    model = _ARCHITECTURES[manifest.architecture](manifest.config)
    weights = folder / Path(manifest.weights_file).name
    return load_torch_checkpoint(weights, model, manifest.sha256), manifest


def _manifest_from_json(document: Any) -> ArtifactManifest:
    if not isinstance(document, dict):
        raise TypeError("the manifest is not a JSON object")
    architecture = str(document["architecture"])
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}")
    sha256 = str(document["sha256"])
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
    config = PATConfig(**document["config"])
    for name in ("encoder_rate", "decoder_rate", "mask_ratio", "layer_norm_eps"):
        if not math.isfinite(getattr(config, name)):
            raise ValueError(f"config.{name} is not finite")
    return ArtifactManifest(
        name=str(document["name"]),
        version=str(document["version"]),
        architecture=architecture,
        config=config,
        sha256=sha256,
        training=dict(document["training"]),
        data=dict(document["data"]),
        quality=dict(document["quality"]),
        weights_file=str(document.get("weights_file", WEIGHTS_FILE)),
    )
