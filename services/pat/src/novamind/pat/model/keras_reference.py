"""The official PAT encoder rebuilt in Keras 3 (TensorFlow backend), for parity tests and benchmarks.

This is the reference our PyTorch :mod:`.pat` is checked against: the same layers, built the way
the official notebooks build them (``TransformerBlock``, ``get_positional_embeddings`` and
``save_encoder_only`` in ``njacobsonlab/Pretrained-Actigraphy-Transformer``,
``Pretraining/PAT_Pretraining.ipynb``) and with the same layer names, so weights saved from it have
the layout of the official encoder files.

It imports TensorFlow and Keras, which the service does not ship: import it only from tests and
the benchmark, never from service code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # type: ignore[import-untyped]
import tensorflow as tf  # type: ignore[import-untyped]
from keras import layers, models

from novamind.pat.model.pat import PATConfig


def get_positional_embeddings(num_patches: int, embed_dim: int) -> tf.Tensor:
    """The official sine/cosine table, (num_patches, embed_dim) float32, computed by TensorFlow."""
    position = tf.range(num_patches, dtype=tf.float32)[:, tf.newaxis]
    div_term = tf.exp(tf.range(0, embed_dim, 2, dtype=tf.float32) * (-tf.math.log(10000.0) / embed_dim))
    return tf.concat([tf.sin(position * div_term), tf.cos(position * div_term)], axis=-1)


def transformer_block(
    embed_dim: int, num_heads: int, ff_dim: int, rate: float = 0.1, name_prefix: str = "encoder"
) -> keras.Model:
    """The official ``TransformerBlock``: a functional model returning [output, attention scores]."""
    input_layer = layers.Input(shape=(None, embed_dim), name=f"{name_prefix}_input")
    attention_layer = layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=embed_dim, name=f"{name_prefix}_attention"
    )
    attention_output, attention_weights = attention_layer(
        input_layer, input_layer, return_attention_scores=True
    )
    attention_output = layers.Dropout(rate, name=f"{name_prefix}_dropout")(attention_output)
    out1 = layers.LayerNormalization(epsilon=1e-6, name=f"{name_prefix}_norm1")(
        input_layer + attention_output
    )
    ff_output = layers.Dense(ff_dim, activation="relu", name=f"{name_prefix}_ff1")(out1)
    ff_output = layers.Dense(embed_dim, name=f"{name_prefix}_ff2")(ff_output)
    ff_output = layers.Dropout(rate, name=f"{name_prefix}_dropout2")(ff_output)
    final_output = layers.LayerNormalization(epsilon=1e-6, name=f"{name_prefix}_norm2")(out1 + ff_output)
    return models.Model(
        inputs=input_layer, outputs=[final_output, attention_weights], name=f"{name_prefix}_transformer"
    )


def build_encoder(config: PATConfig, *, return_attention: bool = True) -> keras.Model:
    """The official ``encoder_model``: (batch, 10080) -> [tokens, attention of block 1, ...].

    With ``return_attention=False`` only the tokens (batch, patches, embed) are returned, which
    keeps PAT-H's eight (heads, 2016, 2016) score tensors out of the outputs.
    """
    num_patches = config.input_size // config.patch_size
    inputs = layers.Input(shape=(config.input_size,), name="inputs")
    reshaped = layers.Reshape((num_patches, config.patch_size), name="reshape")(inputs)
    x = layers.Dense(config.embed_dim, name="dense")(reshaped)
    x = x + get_positional_embeddings(num_patches, config.embed_dim)
    attention_weights = []
    for i in range(config.encoder_num_layers):
        block = transformer_block(
            config.embed_dim,
            config.encoder_num_heads,
            config.encoder_ff_dim,
            config.encoder_rate,
            name_prefix=f"encoder_layer_{i + 1}",
        )
        x, weights = block(x)
        attention_weights.append(weights)
    outputs = [x, *attention_weights] if return_attention else [x]
    return models.Model(inputs=inputs, outputs=outputs, name="encoder_model")


def build_embedding_model(encoder: keras.Model) -> keras.Model:
    """The official fine-tuning front: encoder tokens averaged by ``GlobalAveragePooling1D``.

    Returns a model (batch, 10080) -> [tokens (batch, patches, embed), embedding (batch, embed)].
    """
    inputs = layers.Input(shape=encoder.input_shape[1:], name="finetuning_inputs")
    outputs = encoder(inputs)
    tokens = outputs[0] if isinstance(outputs, list | tuple) else outputs
    pooled = layers.GlobalAveragePooling1D(name="global_avg_pool")(tokens)
    return models.Model(inputs=inputs, outputs=[tokens, pooled], name="finetuning_front")


def randomize_weights(model: keras.Model, seed: int) -> None:
    """Replace every weight by seeded random values (non-zero biases, non-unit norm scales), so a
    weight mapped to the wrong place cannot go unnoticed in a parity test."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        leaf = variable.path.rsplit("/", 1)[-1]
        if leaf == "gamma":
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif leaf in ("beta", "bias"):
            value = 0.1 * rng.standard_normal(shape)
        else:  # kernels, scaled for unit-variance outputs: fan-in is every axis but the output's
            fan_in = int(np.prod(shape[:-1])) if "attention_output" in variable.path else shape[0]
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        variable.assign(value.astype(np.float32))


def save_official_weights(model: keras.Model, path: str | Path) -> None:
    """Write ``model``'s weights as the official ``PAT-*_29k_weights.h5`` files hold them.

    That is the Keras 2 ``save_weights`` HDF5 layout: one group per top-level layer listed in the
    root ``layer_names`` attribute, each with a ``weight_names`` attribute and one dataset per
    TensorFlow variable name (``dense/dense/kernel:0``,
    ``encoder_layer_1_transformer/encoder_layer_1_attention/query/kernel:0``, ...).
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{w.path}:0" for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, weight in zip(names, layer.weights, strict=True):
                group.create_dataset(name, data=np.asarray(weight.numpy(), dtype=np.float32))


def predict(model: keras.Model, weeks: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Run ``model`` on (batch, 10080) weeks in inference mode; returns its outputs as arrays."""
    outputs: Any = model(tf.constant(weeks, dtype=tf.float32), training=False)
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return [np.asarray(o) for o in outputs]
