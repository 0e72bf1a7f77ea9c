"""Render avatar frames: the template face, moved as the patient moved, from parameters alone.

The renderer never sees an original frame: its only input is ``AvatarFrame`` (pose, expression
motion, per-eye gaze and lid margins). It draws

* the template face (MediaPipe's canonical mesh, subdivided twice, smooth-shaded skin with darker
  brows, redder lips and lash lines on the lid margins) with both eye openings cut;
* per eye a 12 mm eyeball (white sclera, grey-blue iris 11.7 mm across with a dark limbal ring,
  3.5 mm black pupil) rotated by the eye's gaze, ray-cast as an exact sphere, inside a dark
  pocket behind each opening (no background shows at the canthi from any view);
* the lids on the template's own lid path, placed so that each upper (lower) margin sits
  ``upper_lid_mm`` above (``lower_lid_mm`` below) that eye's iris centre, measured vertically in
  head coordinates at the iris centre's column. Each eye is independent. (The iris centre here is
  the cornea's point on the 12 mm sphere, 1.5 mm x sin(pitch) from the limbus centre the eye stage
  measures. Placing the lids from the limbus centre was tried: no measurable gain on the clips,
  and FaceNet's mask-to-mask rank-1 rose from 0.032 to 0.059, past 2x chance; docs/benchmarks.md.)

Projection is orthographic in image pixels: a head point p (cm) lands at
``scale_px_per_cm * rotation @ p + translation_px`` (x right, y down, z away from the viewer).
Pixel (row i, column j) is centred on image point (x=j, y=i), as in OpenCV.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from types import TracebackType

import cv2
import numpy as np

from ._template import (
    CARUNCLE_CORE_RGB,
    CARUNCLE_EDGE_RGB,
    CARUNCLE_SIZE_CM,
    EYEBALL_CENTERS_CM,
    EYEBALL_RADIUS_CM,
    INNER_CANTHI,
    POCKET_BACK_Z_CM,
    Template,
    build_template,
)
from .errors import ModelError
from .types import LIMBUS_DEPTH_RADII, AvatarFrame, FaceFit, check_shape

__all__ = [
    "EYEBALL_CENTERS_CM",
    "EYEBALL_RADIUS_CM",
    "AvatarRenderer",
    "iris_centers_cm",
    "neutral_avatar_frame",
    "prepare",
    "project_px",
    "render_avatar",
]

log = logging.getLogger(__name__)

BACKGROUND_RGB = (138, 150, 166)  # neutral grey-blue
NEUTRAL_UPPER_LID_MM = 3.5
NEUTRAL_LOWER_LID_MM = 4.0
TRACKING_LOST_TEXT = "tracking lost"
PUPIL_DIAMETER_MM = 3.5
IRIS_DIAMETER_MM = 11.7
LID_CLEARANCE_CM = 0.06  # driven skin stays this far in front of the eyeball
LID_PARAM_RANGE = ((-2.0, 2.5), (-2.0, 3.5))  # (upper, lower) lid parameter limits
LID_SHADOW = 0.35  # the upper lid's shadow on the eyeball: darkening at the margin
LID_SHADOW_CM = 0.12  # and its depth below the margin
CANTHUS_SHADE = 0.25  # the sclera darkens toward the canthi (curving away, shaded by the lids)
LIGHT_DIR_IMG = np.array([0.0, -0.45, -1.0]) / np.linalg.norm([0.0, -0.45, -1.0])  # toward light

_FACE_VS = """
#version 330
uniform mat3 head_rot;
uniform float head_scale;
uniform vec3 head_shift;
uniform vec2 viewport;
uniform float depth_scale;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    vec3 p = head_scale * (head_rot * in_pos) + head_shift;
    gl_Position = vec4(2.0 * (p.x + 0.5) / viewport.x - 1.0,
                       2.0 * (p.y + 0.5) / viewport.y - 1.0,  // image row 0 = framebuffer row 0
                       (p.z - head_shift.z) * depth_scale, 1.0);
    v_normal = head_rot * in_normal;
    v_color = in_color;
}
"""

_FACE_FS = """
#version 330
uniform vec3 light;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    if (n.z > 0.0) n = -n;  // the viewer looks along +z
    float lambert = max(dot(n, light), 0.0);
    vec3 h = normalize(light + vec3(0.0, 0.0, -1.0));
    float s1 = max(dot(n, h), 0.0);  // spec = s1^24 by squaring: llvmpipe's pow() costs ~1 ms a 720p frame
    float s8 = s1 * s1; s8 *= s8; s8 *= s8;
    float spec = s8 * s8 * s8;
    f_color = vec4(v_color * (0.34 + 0.72 * lambert) + 0.05 * spec, 1.0);
}
"""

_EYE_VS = """
#version 330
uniform vec2 viewport;
uniform vec3 sphere_center;  // image px
uniform float sphere_radius;  // px
in vec2 in_corner;  // (-1..1, -1..1)
out vec2 v_offset;  // px from the sphere centre
void main() {
    vec2 p = sphere_center.xy + (sphere_radius + 1.0) * in_corner;
    v_offset = p - sphere_center.xy;
    gl_Position = vec4(2.0 * (p.x + 0.5) / viewport.x - 1.0,
                       2.0 * (p.y + 0.5) / viewport.y - 1.0, 0.0, 1.0);
}
"""

# Eyeballs are ray-cast spheres: a quad per sphere, exact silhouette and depth.
_EYE_FS = """
#version 330
uniform vec3 light;
uniform float iris_angle;
uniform float pupil_angle;
uniform vec3 sphere_center;
uniform float sphere_radius;
uniform float depth_scale;
uniform float head_z;
uniform mat3 to_local;  // image axes -> eye axes (optical axis = +z)
uniform mat3 img_to_head;  // image px offsets -> head cm (rotation^T / scale)
uniform vec3 head_shift;
uniform vec2 caruncle_xy;  // head cm: the inner canthus
uniform vec3 caruncle_size;  // head cm: full-colour radius, fade-out radius, vertical squash
uniform vec3 eye_center_head;  // head cm
uniform float upper_margin_y;  // head cm: the upper lid margin above the iris
in vec2 v_offset;
out vec4 f_color;
void main() {
    float d2 = dot(v_offset, v_offset);
    float r2 = sphere_radius * sphere_radius;
    if (d2 >= r2) discard;
    float dz = sqrt(r2 - d2);
    vec3 n = vec3(v_offset, -dz) / sphere_radius;  // image axes, toward the viewer
    float z = sphere_center.z - dz;
    gl_FragDepth = 0.5 * ((z - head_z) * depth_scale) + 0.5;
    float lambert = max(dot(n, light), 0.0);
    vec3 q = normalize(to_local * n);
    float ang = acos(clamp(q.z, -1.0, 1.0));
    float w = max(fwidth(ang), 1e-4);
    float phi = atan(q.y, q.x);
    float r = ang / iris_angle;
    vec3 iris = mix(vec3(0.42, 0.54, 0.66), vec3(0.25, 0.35, 0.48), smoothstep(0.3, 0.9, r));
    iris *= 0.86 + 0.14 * sin(phi * 41.0 + 2.5 * sin(phi * 7.0));
    iris = mix(iris, vec3(0.13, 0.17, 0.24), smoothstep(0.80, 0.97, r));  // limbal ring
    vec3 sclera = vec3(0.93, 0.93, 0.91);
    vec3 c = mix(iris, sclera, smoothstep(iris_angle - w, iris_angle + w, ang));
    c = mix(vec3(0.02, 0.02, 0.025), c, smoothstep(pupil_angle - w, pupil_angle + w, ang));
    // caruncle and plica at the inner canthus: fixed to the head, in front of the rotating eye
    vec3 p_head = img_to_head * (vec3(sphere_center.xy + v_offset, z) - head_shift);
    vec2 ph = p_head.xy - caruncle_xy;
    // the lids shade the eyeball: a soft shadow under the upper margin, darker toward the canthi
    c *= 1.0 - LID_SHADOW * (1.0 - smoothstep(0.0, LID_SHADOW_CM, upper_margin_y - p_head.y));
    c *= 1.0 - CANTHUS_SHADE * smoothstep(0.45, 1.0, abs(p_head.x - eye_center_head.x) / 1.2);
    float dc = length(ph * vec2(1.0, caruncle_size.z));
    c = mix(c, CARUNCLE_EDGE, 1.0 - smoothstep(caruncle_size.x, caruncle_size.y, dc));
    c = mix(c, CARUNCLE_CORE, 1.0 - smoothstep(0.5 * caruncle_size.x, caruncle_size.x, dc));
    vec3 h = normalize(light + vec3(0.0, 0.0, -1.0));
    float spec = pow(max(dot(n, h), 0.0), 400.0);
    f_color = vec4(c * (0.55 + 0.5 * lambert) + 0.7 * spec, 1.0);
}
"""


def _gaze_dirs(gaze_yaw_deg: np.ndarray, gaze_pitch_deg: np.ndarray) -> np.ndarray:
    yaw = np.radians(np.asarray(gaze_yaw_deg, dtype=np.float64))
    pitch = np.radians(np.asarray(gaze_pitch_deg, dtype=np.float64))
    return np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=-1)


def _eye_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Rotation taking the eye's local optical axis (+z) to the gaze direction, head coordinates."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0.0, np.sin(y)], [0.0, 1.0, 0.0], [-np.sin(y), 0.0, np.cos(y)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), -np.sin(p)], [0.0, np.sin(p), np.cos(p)]])
    # rx turns +z toward -y for positive p; the eye looks up for positive pitch, so use rx(-p).
    return ry @ rx.T


def iris_centers_cm(gaze_yaw_deg: np.ndarray, gaze_pitch_deg: np.ndarray) -> np.ndarray:
    """Template iris (cornea) centres for a gaze, head coordinates.

    Args:
        gaze_yaw_deg: (..., 2) per-eye yaw, positive toward head +x.
        gaze_pitch_deg: (..., 2) per-eye pitch, positive up.

    Returns:
        (..., 2, 3) float64 cm: where each eye's optical axis leaves its 12 mm sphere.
    """
    return EYEBALL_CENTERS_CM + EYEBALL_RADIUS_CM * _gaze_dirs(gaze_yaw_deg, gaze_pitch_deg)


def project_px(frame: AvatarFrame, points_cm: np.ndarray) -> np.ndarray:
    """Image position (x, y, z px) of head points (..., 3) cm under the frame's pose."""
    points = np.asarray(points_cm, dtype=np.float64)
    return frame.scale_px_per_cm * points @ np.asarray(frame.rotation).T + np.asarray(frame.translation_px)


def limbus_centers_px(frame: AvatarFrame) -> np.ndarray:
    """(2, 2) image px of the limbus centre drawn for each eye (what the eye stage should read back):
    the eyeball centre + ``LIMBUS_DEPTH_RADII`` radii along the frame's gaze, under its pose."""
    gaze = _gaze_dirs(frame.gaze_yaw_deg, frame.gaze_pitch_deg)
    return project_px(frame, EYEBALL_CENTERS_CM + EYEBALL_RADIUS_CM * LIMBUS_DEPTH_RADII * gaze)[:, :2]


def neutral_avatar_frame(width: int, height: int) -> AvatarFrame:
    """The template face frontal, centred, eyes open and straight ahead, filling ~75 % of the height."""
    y_top, y_bottom = 8.26, -9.40  # canonical mesh extent, cm
    scale = 0.75 * min(width, height) / (y_top - y_bottom)
    y_mid = 0.5 * (y_top + y_bottom)
    return AvatarFrame(
        tracked=True,
        rotation=np.diag([1.0, -1.0, -1.0]),
        scale_px_per_cm=float(scale),
        translation_px=np.array([(width - 1) / 2.0, (height - 1) / 2.0 + scale * y_mid, 0.0]),
        expression_cm=np.zeros((468, 3)),
        gaze_yaw_deg=np.zeros(2),
        gaze_pitch_deg=np.zeros(2),
        upper_lid_mm=np.full(2, NEUTRAL_UPPER_LID_MM),
        lower_lid_mm=np.full(2, NEUTRAL_LOWER_LID_MM),
    )


def _check_frame(frame: AvatarFrame) -> None:
    check_shape(np.asarray(frame.rotation), (3, 3), name="rotation")
    check_shape(np.asarray(frame.translation_px), (3,), name="translation_px")
    check_shape(np.asarray(frame.expression_cm), (468, 3), name="expression_cm")
    for name in ("gaze_yaw_deg", "gaze_pitch_deg", "upper_lid_mm", "lower_lid_mm"):
        check_shape(np.asarray(getattr(frame, name)), (2,), name=name)


def _is_finite(frame: AvatarFrame) -> bool:
    values = (frame.rotation, frame.translation_px, frame.expression_cm, frame.gaze_yaw_deg,
              frame.gaze_pitch_deg, frame.upper_lid_mm, frame.lower_lid_mm)
    return bool(np.isfinite(frame.scale_px_per_cm) and frame.scale_px_per_cm > 0
                and all(np.isfinite(np.asarray(v)).all() for v in values))


def prepare() -> None:
    """Load what every renderer needs and no frame changes: moderngl and the template face
    (scipy.sparse and the subdivision, ~0.3 s here). ``AvatarRenderer`` does this itself; the
    pipeline calls it in a background thread while the first pass runs, so rendering starts at
    once. (The OpenGL context itself belongs to the thread that renders, so it is made there.)"""
    importlib.import_module("moderngl")
    build_template()


class AvatarRenderer:
    """Offscreen OpenGL renderer of the template avatar (EGL; Mesa llvmpipe or a GPU).

    Args:
        width, height: output size in pixels.
        background_rgb: background colour.
        samples: multisampling (0 = off); None = 4 on a GPU, off on Mesa's CPU renderer
            (llvmpipe), where 4x would double the time per frame.

    Raises:
        ModelError: no headless OpenGL context can be created.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        background_rgb: tuple[int, int, int] = BACKGROUND_RGB,
        samples: int | None = None,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"render size must be at least 16x16 px, got {width}x{height}")
        import moderngl  # local: importing digital_mask must not need OpenGL

        try:
            self._ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as exc:  # moderngl raises plain Exception subclasses from the driver
            raise ModelError(
                "cannot create a headless OpenGL (EGL) context for rendering; install the system "
                "packages libegl1 and libgl1-mesa-dri (Debian/Ubuntu) or a GPU driver with EGL "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        self.width, self.height = int(width), int(height)
        self._background = tuple(c / 255.0 for c in background_rgb)
        self._template: Template = build_template()
        self._neutral: np.ndarray | None = None
        self._upper_margin_y = np.zeros(2)  # head cm, at the iris column (set per frame)
        ctx = self._ctx
        t = self._template

        if samples is None:
            samples = 0 if "llvmpipe" in ctx.info["GL_RENDERER"].lower() else 4
        samples = min(int(samples), ctx.max_samples) if samples else 0
        size = (self.width, self.height)
        self._fbo = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer(size, 4)], depth_attachment=ctx.depth_renderbuffer(size)
        )
        if samples > 1:
            self._fbo_ms = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, 4, samples=samples)],
                depth_attachment=ctx.depth_renderbuffer(size, samples=samples),
            )
        else:
            self._fbo_ms = None
        self._readback = np.empty((self.height, self.width, 4), np.uint8)  # RGBA: Mesa's fast read path

        self._face_prog = ctx.program(vertex_shader=_FACE_VS, fragment_shader=_FACE_FS)
        defines = "".join(f"#define {name} vec3({r:.4f}, {g:.4f}, {b:.4f})\n" for name, (r, g, b) in
                          (("CARUNCLE_CORE", CARUNCLE_CORE_RGB), ("CARUNCLE_EDGE", CARUNCLE_EDGE_RGB)))
        defines += f"#define LID_SHADOW {LID_SHADOW:.4f}\n#define LID_SHADOW_CM {LID_SHADOW_CM:.4f}\n"
        defines += f"#define CANTHUS_SHADE {CANTHUS_SHADE:.4f}\n"
        self._eye_prog = ctx.program(vertex_shader=_EYE_VS,
                                     fragment_shader=_EYE_FS.replace("#version 330\n", "#version 330\n" + defines, 1))
        _set(self._eye_prog, "caruncle_size", tuple(float(v) for v in CARUNCLE_SIZE_CM))
        n_fine = t.subdivision.shape[0]
        self._face_data = np.zeros((n_fine, 6), np.float32)
        self._face_vbo = ctx.buffer(reserve=self._face_data.nbytes, dynamic=True)
        self._color_vbo = ctx.buffer(np.ascontiguousarray(t.colors_rgb, dtype=np.float32).tobytes())
        self._face_ibo = ctx.buffer(np.ascontiguousarray(t.faces, dtype=np.int32).tobytes())
        self._face_vao = ctx.vertex_array(
            self._face_prog,
            [(self._face_vbo, "3f 3f", "in_pos", "in_normal"), (self._color_vbo, "3f", "in_color")],
            index_buffer=self._face_ibo,
            index_element_size=4,
        )
        quad = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32)
        self._eye_vao = ctx.vertex_array(self._eye_prog, [(ctx.buffer(quad.tobytes()), "2f", "in_corner")])
        self._eye_prog["iris_angle"].value = float(np.arcsin(IRIS_DIAMETER_MM / 20.0 / EYEBALL_RADIUS_CM))
        self._eye_prog["pupil_angle"].value = float(np.arcsin(PUPIL_DIAMETER_MM / 20.0 / EYEBALL_RADIUS_CM))
        for prog in (self._face_prog, self._eye_prog):
            prog["viewport"].value = (float(self.width), float(self.height))
            prog["light"].value = tuple(float(v) for v in LIGHT_DIR_IMG)
        log.info("avatar renderer: %s, %dx%d, %dx MSAA", ctx.info["GL_RENDERER"], self.width,
                 self.height, samples)

    # ---------------------------------------------------------------- geometry
    def _lid_params(self, eye: int, iris: np.ndarray, upper_mm: float, lower_mm: float) -> tuple[float, float]:
        """Lid parameters (upper, lower) placing the margins at the targets above the iris column."""
        g = self._template.eyes[eye]
        x_lo, x_hi = sorted((g.fine_upper_x[0], g.fine_upper_x[-1]))
        margin = 0.25 * (x_hi - x_lo)
        x = float(np.clip(iris[0], x_lo + margin, x_hi - margin))
        order_u = np.argsort(g.fine_upper_x)
        order_l = np.argsort(g.fine_lower_x)
        yc = np.interp(x, g.fine_upper_x[order_u], g.fine_upper_closed_y[order_u])
        du = np.interp(x, g.fine_upper_x[order_u], g.fine_upper_open_y[order_u]) - yc
        dl = np.interp(x, g.fine_lower_x[order_l], g.fine_lower_open_y[order_l]) - yc  # < 0
        top = iris[1] + upper_mm / 10.0
        bottom = iris[1] - lower_mm / 10.0
        if top < bottom:  # closed: the lids meet, never cross
            top = bottom = 0.5 * (top + bottom)
        (u_lo, u_hi), (l_lo, l_hi) = LID_PARAM_RANGE
        a_up = float(np.clip((top - yc) / du, u_lo, u_hi))
        a_low = float(np.clip((bottom - yc) / dl, l_lo, l_hi))
        m_up, m_low = yc + a_up * du, yc + a_low * dl
        if m_up < m_low:
            mid = 0.5 * (m_up + m_low)
            a_up, a_low = (mid - yc) / du, (mid - yc) / dl
        self._upper_margin_y[eye] = yc + a_up * du
        return a_up, a_low

    def _control_points(self, frame: AvatarFrame, irises: np.ndarray) -> np.ndarray:
        t = self._template
        points = t.vertices_cm + np.asarray(frame.expression_cm, dtype=np.float64)
        for e, g in enumerate(t.eyes):
            a_up, a_low = self._lid_params(e, irises[e], float(frame.upper_lid_mm[e]),
                                           float(frame.lower_lid_mm[e]))
            a = np.where(g.contour_is_upper, a_up, a_low)
            a[g.contour_is_corner] = 1.0
            dy = (g.contour_closed_y + a * (g.contour_open_y - g.contour_closed_y)) - g.contour_open_y
            dy1 = g.ring1_from_contour @ dy
            dy2 = g.ring2_from_ring1 @ dy1
            center = EYEBALL_CENTERS_CM[e]
            for idx, d in ((g.contour, dy), (g.ring1, dy1), (g.ring2, dy2)):
                p = t.vertices_cm[idx].copy()
                p[:, 1] += d
                front = _sphere_front_z(p[:, :2], center, EYEBALL_RADIUS_CM + LID_CLEARANCE_CM)
                p[:, 2] = np.maximum(p[:, 2], front)
                points[idx] = p
        return points

    def _face_vertices(self, frame: AvatarFrame, irises: np.ndarray) -> np.ndarray:
        t = self._template
        fine = t.subdivision @ self._control_points(frame, irises)
        for e, g in enumerate(t.eyes):
            p = fine[g.fine_region]
            front = _sphere_front_z(p[:, :2], EYEBALL_CENTERS_CM[e], EYEBALL_RADIUS_CM + LID_CLEARANCE_CM / 2)
            fine[g.fine_region, 2] = np.maximum(p[:, 2], front)
            fine[g.pocket_front] = fine[g.pocket_loop]
            fine[g.pocket_back, :2] = fine[g.pocket_loop, :2]
            fine[g.pocket_back, 2] = POCKET_BACK_Z_CM
            fine[g.pocket_center] = fine[g.pocket_back].mean(axis=0)
        f = t.faces
        v0 = fine[f[:, 0]]
        face_normals = np.cross(fine[f[:, 1]] - v0, fine[f[:, 2]] - v0)
        normals = t.normal_matrix @ face_normals
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        self._face_data[:, :3] = fine
        self._face_data[:, 3:] = normals
        return self._face_data

    # ---------------------------------------------------------------- drawing
    def render(self, frame: AvatarFrame) -> np.ndarray:
        """Render one frame.

        Args:
            frame: pose, expression and eye parameters. ``tracked=False`` (or any non-finite
                value, which fails closed) gives ``neutral_frame()``.

        Returns:
            (height, width, 3) uint8 RGB, row 0 = top of the image.

        Raises:
            ValueError: an array of ``frame`` has the wrong shape.
        """
        _check_frame(frame)
        if not frame.tracked or not _is_finite(frame):
            return self.neutral_frame()
        return self._draw(frame)

    def _draw(self, frame: AvatarFrame) -> np.ndarray:
        with self._ctx:  # make this renderer's context current (several renderers may coexist)
            return self._draw_current(frame)

    def _draw_current(self, frame: AvatarFrame) -> np.ndarray:
        ctx = self._ctx
        irises = iris_centers_cm(frame.gaze_yaw_deg, frame.gaze_pitch_deg)
        data = self._face_vertices(frame, irises)
        self._face_vbo.write(data.tobytes())

        rot = np.asarray(frame.rotation, dtype=np.float64)
        scale = float(frame.scale_px_per_cm)
        shift = np.asarray(frame.translation_px, dtype=np.float64)
        depth_scale = 1.0 / (scale * 40.0)
        face = self._face_prog
        face["head_rot"].write(rot.T.astype(np.float32).tobytes())  # GLSL is column-major
        face["head_scale"].value = scale
        face["head_shift"].value = tuple(shift)
        face["depth_scale"].value = depth_scale
        eye = self._eye_prog
        eye["depth_scale"].value = depth_scale
        eye["head_z"].value = float(shift[2])
        if "img_to_head" in eye:
            eye["img_to_head"].write((rot / scale).astype(np.float32).tobytes())  # rot.T / scale, column-major
        _set(eye, "head_shift", tuple(shift))

        target = self._fbo_ms or self._fbo
        target.use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        target.clear(*self._background, 1.0, depth=1.0)
        self._face_vao.render()
        for e in range(2):
            center = EYEBALL_CENTERS_CM[e]
            to_local = _eye_rotation(frame.gaze_yaw_deg[e], frame.gaze_pitch_deg[e]).T @ rot.T
            eye["sphere_center"].value = tuple(scale * rot @ center + shift)
            eye["sphere_radius"].value = scale * EYEBALL_RADIUS_CM
            eye["to_local"].write(to_local.T.astype(np.float32).tobytes())
            _set(eye, "caruncle_xy", tuple(float(v) for v in self._template.vertices_cm[INNER_CANTHI[e], :2]))
            _set(eye, "eye_center_head", tuple(float(v) for v in center))
            _set(eye, "upper_margin_y", float(self._upper_margin_y[e]))
            self._eye_vao.render(mode=ctx.TRIANGLE_STRIP)
        if self._fbo_ms is not None:
            ctx.copy_framebuffer(self._fbo, self._fbo_ms)
        self._fbo.read_into(self._readback, components=4, alignment=1)
        # The shaders draw image row 0 into framebuffer row 0, so the read-back is already top-down
        # (no flip); RGBA -> RGB, a new array (0.4 vs 1.1 ms at 720p reading RGB).
        return cv2.cvtColor(self._readback, cv2.COLOR_RGBA2RGB)

    def neutral_frame(self) -> np.ndarray:
        """What an untracked frame shows: the template frontal, eyes open, and "tracking lost"."""
        if self._neutral is None:
            image = np.ascontiguousarray(self._draw(neutral_avatar_frame(self.width, self.height)))
            font = cv2.FONT_HERSHEY_SIMPLEX
            font_scale = max(0.4, self.height / 720.0)
            thickness = max(1, round(2 * font_scale))
            (tw, th), _ = cv2.getTextSize(TRACKING_LOST_TEXT, font, font_scale, thickness)
            org = ((self.width - tw) // 2, self.height - max(8, th))
            for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1), (2, 2)):  # dark halo (same advance)
                halo = (org[0] + dx, org[1] + dy)
                cv2.putText(image, TRACKING_LOST_TEXT, halo, font, font_scale, (30, 30, 30), thickness, cv2.LINE_AA)
            cv2.putText(image, TRACKING_LOST_TEXT, org, font, font_scale, (250, 250, 250), thickness, cv2.LINE_AA)
            image.flags.writeable = False
            self._neutral = image
        return self._neutral.copy()

    def close(self) -> None:
        """Release the OpenGL context (idempotent)."""
        ctx = getattr(self, "_ctx", None)
        if ctx is not None:
            ctx.release()
            self._ctx = None

    def __enter__(self) -> AvatarRenderer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _set(prog: object, name: str, value: object) -> None:
    """Set a uniform the shader may have optimised away (an appearance term turned off)."""
    if name in prog:  # type: ignore[operator]
        prog[name].value = value  # type: ignore[index]


def _sphere_front_z(xy: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """z (cm) of the front of a sphere over points (x, y); -inf outside its outline."""
    r2 = radius**2 - ((xy - center[:2]) ** 2).sum(axis=-1)
    return np.where(r2 > 0, center[2] + np.sqrt(np.maximum(r2, 0.0)), -np.inf)


def render_avatar(fit: FaceFit, width: int | None = None, height: int | None = None) -> Iterator[np.ndarray]:
    """Render a whole fit frame by frame (a stream: memory does not grow with length).

    Args:
        fit: the reconstruction.
        width, height: output size; defaults to ``fit.image_size``.

    Yields:
        (height, width, 3) uint8 RGB frames, one per fit frame.
    """
    w, h = (width or fit.image_size[0]), (height or fit.image_size[1])
    with AvatarRenderer(w, h) as renderer:
        for i in range(len(fit)):
            yield renderer.render(fit.frame(i))
