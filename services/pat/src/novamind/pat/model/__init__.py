"""The Pretrained Actigraphy Transformer: the model (:mod:`.pat`) and its weights (:mod:`.weights`).

:mod:`.keras_reference` (the official Keras architecture, for parity tests and benchmarks) needs
TensorFlow and is not imported here.
"""

from novamind.pat.model.pat import (
    MINUTES_PER_WEEK,
    PAT_SIZES,
    EncoderBlock,
    PATConfig,
    PATEncoder,
    PATEncoderOutput,
    PATMaskedAutoencoder,
    PATMaskedAutoencoderOutput,
    sinusoidal_positional_embeddings,
)
from novamind.pat.model.weights import (
    ArtifactManifest,
    infer_official_config,
    load_official_h5,
    load_torch_checkpoint,
    read_artifact,
    save_torch_checkpoint,
    write_artifact,
)

__all__ = [
    "MINUTES_PER_WEEK",
    "PAT_SIZES",
    "ArtifactManifest",
    "EncoderBlock",
    "PATConfig",
    "PATEncoder",
    "PATEncoderOutput",
    "PATMaskedAutoencoder",
    "PATMaskedAutoencoderOutput",
    "infer_official_config",
    "load_official_h5",
    "load_torch_checkpoint",
    "read_artifact",
    "save_torch_checkpoint",
    "sinusoidal_positional_embeddings",
    "write_artifact",
]
