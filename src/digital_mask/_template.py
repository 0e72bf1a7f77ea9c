"""The template face the renderer draws: MediaPipe's canonical mesh, eye holes cut, subdivided.

Built once per process (``build_template``) from the bundled canonical mesh. Everything here is
fixed geometry in head coordinates (cm; x toward the patient's left, y up, z toward the viewer);
the per-frame work (driving the lids, one sparse matmul, normals) is in ``rendering``.

Subdivision is Loop's scheme written as a sparse matrix ``S`` (fine vertices x 468 control
vertices), so a frame's fine mesh is ``S @ control_points``. Boundary edges (eye openings, face
outline) follow the cubic B-spline boundary rule, and the four eye corners are kept as corner
vertices, so each eye's fine lid margin depends on that eye's 16 contour vertices only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where the template is built: scipy.sparse costs ~0.15 s of start-up,
    import scipy.sparse as sp  # which ``rendering.prepare`` moves off the critical path

from .models import CANONICAL_FACE_MESH, model_path

# Eye contours (MediaPipe FACEMESH_RIGHT_EYE / LEFT_EYE), each chain from the outer corner to the
# inner corner. Index 0 = patient's right eye (head -x), 1 = left eye (head +x).
UPPER_LID = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133),
    (263, 466, 388, 387, 386, 385, 384, 398, 362),
)
LOWER_LID = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133),
    (263, 249, 390, 373, 374, 380, 381, 382, 362),
)
EYEBALL_RADIUS_CM = 1.2
# Eyeball centres in head coordinates: x midway between the canonical eye corners, y at the
# middle of the canonical lid opening, z such that the cornea apex (z + radius) sits 0.8 mm behind
# the canonical upper-lid apex (159 / 386, z = 3.877).
EYEBALL_CENTERS_CM = np.array([[-3.151, 2.63, 2.60], [3.151, 2.63, 2.60]])
# The closed lid curve: this fraction of the way from the lower to the upper canonical margin.
CLOSED_FRACTION = 0.4
# Skin around the eye follows the lid margin by these fractions (first and second vertex ring).
RING_FOLLOW = (0.55, 0.5)  # ring 1: 0.55 x mean contour motion; ring 2: 0.5 x mean ring-1 motion

SKIN_RGB = (0.86, 0.68, 0.58)
LIPS_RGB = (0.72, 0.40, 0.40)
BROWS_RGB = (0.42, 0.31, 0.26)
UPPER_LASH_RGB = (0.22, 0.15, 0.13)
LOWER_LASH_RGB = (0.80, 0.60, 0.53)  # a waterline tint, skin-like: real lower lashes barely show
POCKET_RGB = (0.30, 0.13, 0.12)
# The caruncle and plica at each inner canthus (drawn on the eyeball, fixed to the head): full
# colour within CARUNCLE_SIZE_CM[0] of the canthus, fading out by [1]; [2] squashes it vertically.
INNER_CANTHI = (UPPER_LID[0][-1], UPPER_LID[1][-1])
CARUNCLE_CORE_RGB = (0.80, 0.47, 0.47)
CARUNCLE_EDGE_RGB = (0.90, 0.70, 0.68)
CARUNCLE_SIZE_CM = (0.20, 0.32, 1.0)
OUTER_CANTHUS_RGB = (0.62, 0.50, 0.48)
POCKET_BACK_SHADE = 0.6
POCKET_BACK_Z_CM = 1.0  # the pocket's flat back, behind the eyeballs' centres (z = 2.6)


@dataclass(frozen=True)
class EyeGeometry:
    """Fixed lid geometry of one template eye (coarse indices into the 468 control vertices).

    contour:        (16,) contour vertex indices (upper chain then lower chain inner part).
    contour_open_y: (16,) canonical y (cm) = lid parameter 1.
    contour_closed_y: (16,) y (cm) of the closed curve = lid parameter 0.
    contour_is_upper: (16,) bool; corners count as neither and never move.
    contour_is_corner: (16,) bool.
    ring1, ring2:   vertex indices of the first and second ring of skin around the contour.
    ring1_from_contour: (n1, 16) ring-1 y motion = this @ contour y motion.
    ring2_from_ring1:   (n2, n1) ring-2 y motion = this @ ring-1 y motion.
    fine_upper, fine_lower: fine-mesh vertex indices of the subdivided margins, outer to inner.
    fine_upper_x, fine_lower_x: (k,) their x (cm), fixed.
    fine_upper_closed_y, fine_upper_open_y, fine_lower_closed_y, fine_lower_open_y: their y at
                    lid parameter 0 and 1 (the fine margin is linear in the parameter).
    fine_region:    fine vertices influenced by the driven vertices (pushed in front of the eyeball).
    pocket_loop:    fine vertices of the whole opening, in loop order (upper margin, then lower).
    pocket_front, pocket_back, pocket_center: the eye pocket's vertices (copies of the loop, the
                    loop moved back to ``POCKET_BACK_Z_CM``, the centre of the back cap).
    """

    contour: np.ndarray
    contour_open_y: np.ndarray
    contour_closed_y: np.ndarray
    contour_is_upper: np.ndarray
    contour_is_corner: np.ndarray
    ring1: np.ndarray
    ring2: np.ndarray
    ring1_from_contour: np.ndarray
    ring2_from_ring1: np.ndarray
    fine_upper: np.ndarray
    fine_lower: np.ndarray
    fine_upper_x: np.ndarray
    fine_lower_x: np.ndarray
    fine_upper_closed_y: np.ndarray
    fine_upper_open_y: np.ndarray
    fine_lower_closed_y: np.ndarray
    fine_lower_open_y: np.ndarray
    fine_region: np.ndarray
    pocket_loop: np.ndarray
    pocket_front: np.ndarray
    pocket_back: np.ndarray
    pocket_center: int


@dataclass(frozen=True)
class Template:
    """The template face.

    vertices_cm:   (468, 3) float64 canonical control vertices.
    subdivision:   (N, 468) CSR matrix: fine vertices = subdivision @ control vertices.
    faces:         (M, 3) int32 fine triangles, eye holes open, wound counter-clockwise seen
                   from +z (the viewer).
    colors_rgb:    (N, 3) float32 per fine vertex, 0..1.
    normal_matrix: (N, M) CSR: unnormalised vertex normals = normal_matrix @ face normals.
    eyes:          (right, left) EyeGeometry.
    """

    vertices_cm: np.ndarray
    subdivision: sp.csr_matrix
    faces: np.ndarray
    colors_rgb: np.ndarray
    normal_matrix: sp.csr_matrix
    eyes: tuple[EyeGeometry, EyeGeometry]


def _loop_step(
    faces: np.ndarray, n_vertices: int, corners: set[int], refine: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """One Loop subdivision step as a sparse (n_new, n_vertices) matrix plus the new faces.

    New vertex order: the old vertices (same indices), then one per edge. With ``refine`` (a bool
    per face) only those faces are split in four (plus any face with all three edges split);
    their neighbours are split along the shared edges (red-green refinement, no cracks), the
    rest keep their corners (at their smoothed positions). Unused edge vertices get rows too.
    """
    import scipy.sparse as sp

    edges_directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    opposite = np.concatenate([faces[:, 2], faces[:, 0], faces[:, 1]])
    edges_sorted = np.sort(edges_directed, axis=1)
    edges, inverse, counts = np.unique(edges_sorted, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    n_edges = len(edges)
    boundary_edge = counts == 1

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    # Odd (edge) vertices.
    edge_rows = n_vertices + np.arange(n_edges)
    w_end = np.where(boundary_edge, 0.5, 3.0 / 8.0)
    rows += [edge_rows, edge_rows]
    cols += [edges[:, 0], edges[:, 1]]
    vals += [w_end, w_end]
    interior_half = ~boundary_edge[inverse]
    rows.append(n_vertices + inverse[interior_half])
    cols.append(opposite[interior_half])
    vals.append(np.full(interior_half.sum(), 1.0 / 8.0))

    # Even (old) vertices.
    neighbours: list[set[int]] = [set() for _ in range(n_vertices)]
    boundary_neighbours: list[list[int]] = [[] for _ in range(n_vertices)]
    for (a, b), is_b in zip(edges, boundary_edge):
        neighbours[a].add(int(b))
        neighbours[b].add(int(a))
        if is_b:
            boundary_neighbours[a].append(int(b))
            boundary_neighbours[b].append(int(a))
    er: list[int] = []
    ec: list[int] = []
    ev: list[float] = []
    for v in range(n_vertices):
        nb = neighbours[v]
        bnb = boundary_neighbours[v]
        if not nb:
            er.append(v); ec.append(v); ev.append(1.0)  # noqa: E702
        elif bnb:
            if v in corners or len(bnb) != 2:
                er.append(v); ec.append(v); ev.append(1.0)  # noqa: E702
            else:
                er += [v, v, v]
                ec += [v, bnb[0], bnb[1]]
                ev += [0.75, 0.125, 0.125]
        else:
            n = len(nb)
            beta = 3.0 / 16.0 if n == 3 else 3.0 / (8.0 * n)
            er.append(v); ec.append(v); ev.append(1.0 - n * beta)  # noqa: E702
            for u in nb:
                er.append(v); ec.append(u); ev.append(beta)  # noqa: E702
    rows.append(np.asarray(er))
    cols.append(np.asarray(ec))
    vals.append(np.asarray(ev))
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_vertices + n_edges, n_vertices),
    )

    edge_of = inverse.reshape(3, -1)  # edge_of[0]: edge (0,1), [1]: (1,2), [2]: (2,0)
    red = np.ones(len(faces), bool) if refine is None else refine.copy()
    while True:
        split = np.zeros(n_edges, bool)
        split[edge_of[:, red].ravel()] = True
        n_split = split[edge_of].sum(axis=0)
        grown = red | (n_split == 3)
        if (grown == red).all():
            break
        red = grown
    e = n_vertices + edge_of
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    r = red
    out = [
        np.stack([a[r], e[0][r], e[2][r]], 1),
        np.stack([e[0][r], b[r], e[1][r]], 1),
        np.stack([e[2][r], e[1][r], c[r]], 1),
        np.stack([e[0][r], e[1][r], e[2][r]], 1),
        faces[n_split == 0],
    ]
    for f in np.flatnonzero(~red & (n_split > 0)):  # green: fan from a split edge's midpoint
        polygon: list[int] = []
        for k in range(3):
            polygon.append(int(faces[f, k]))
            if split[edge_of[k, f]]:
                polygon.append(int(e[k, f]))
        start = next(i for i, v in enumerate(polygon) if v >= n_vertices)
        polygon = polygon[start:] + polygon[:start]
        out.append(np.array([[polygon[0], polygon[i], polygon[i + 1]] for i in range(1, len(polygon) - 1)]))
    return matrix, np.concatenate(out).astype(np.int64)


def _adjacency(faces: np.ndarray, n: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(n)]
    for f in faces:
        for i in range(3):
            adj[f[i]].update(int(x) for x in f)
    for v in range(n):
        adj[v].discard(v)
    return adj


def _boundary_neighbours(faces: np.ndarray) -> dict[int, list[int]]:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    nbrs: dict[int, list[int]] = {}
    for a, b in edges[counts == 1]:
        nbrs.setdefault(int(a), []).append(int(b))
        nbrs.setdefault(int(b), []).append(int(a))
    return nbrs


def _boundary_path(nbrs: dict[int, list[int]], matrix: sp.csr_matrix, chain: np.ndarray) -> list[int]:
    """Fine boundary vertices along a lid chain, from its outer corner to its inner corner.

    Coarse vertices keep their index in the fine mesh; the walk leaves the outer corner toward
    the chain's second contour vertex.
    """
    start, second, stop = int(chain[0]), int(chain[1]), int(chain[-1])
    first = max(nbrs[start], key=lambda u: matrix[u, second])
    path = [start, first]
    while path[-1] != stop:
        options = [u for u in nbrs[path[-1]] if u != path[-2]]
        if len(options) != 1 or len(path) > 10_000:
            raise RuntimeError("template eye boundary is not a simple loop")
        path.append(options[0])
    return path


@cache
def build_template(levels: int = 2) -> Template:
    """Build the subdivided template face (cached per process).

    One Loop step everywhere; steps after the first refine only around the eyes and along the
    face outline (vertex processing dominates the cost on a CPU renderer).
    """
    import scipy.sparse as sp

    data = np.load(model_path(CANONICAL_FACE_MESH))
    vertices = data["V"].astype(np.float64)
    faces = data["F"].astype(np.int64)
    n = len(vertices)

    contours = [np.array(UPPER_LID[e] + LOWER_LID[e][1:-1]) for e in range(2)]
    in_contour = np.zeros(n, bool)
    for c in contours:
        mask = np.zeros(n, bool)
        mask[c] = True
        faces = faces[~mask[faces].all(axis=1)]  # cut the eye opening
        in_contour |= mask
    corners = {UPPER_LID[e][0] for e in range(2)} | {UPPER_LID[e][-1] for e in range(2)}

    adj = _adjacency(faces, n)
    fine_region_seed = np.zeros(n)
    for c in contours:
        ring1 = set().union(*(adj[v] for v in c))
        fine_region_seed[list(set().union(*(adj[v] for v in ring1)))] = 1.0
    outline = _boundary_neighbours(faces)
    fine_region_seed[[v for v in outline if not in_contour[v]]] = 1.0

    matrix = sp.identity(n, format="csr")
    fine_faces = faces
    count = n
    for level in range(levels):
        refine = None if level == 0 else ((matrix @ fine_region_seed)[fine_faces] > 1e-6).any(axis=1)
        step, fine_faces = _loop_step(fine_faces, count, corners, refine)
        matrix = (step @ matrix).tocsr()
        count = step.shape[0]
    matrix.eliminate_zeros()

    # Colours: skin, brows darker, lips redder (smoothed by the subdivision), lashes on margins.
    coarse_rgb = np.tile(np.array(SKIN_RGB), (n, 1))
    coarse_rgb[data["brows"]] = BROWS_RGB
    coarse_rgb[data["lips"]] = LIPS_RGB
    colors = matrix @ coarse_rgb

    boundary = _boundary_neighbours(fine_faces)
    eyes = []
    for e in range(2):
        upper, lower = np.array(UPPER_LID[e]), np.array(LOWER_LID[e])
        contour = contours[e]
        y_open = vertices[contour, 1].copy()
        # The closed curve per column: the upper and lower chains share their x values.
        y_up = vertices[upper, 1]
        y_low = vertices[lower, 1]
        y_closed_chain = y_low + CLOSED_FRACTION * (y_up - y_low)
        closed = dict(zip(upper.tolist(), y_closed_chain)) | dict(zip(lower.tolist(), y_closed_chain))
        y_closed = np.array([closed[int(v)] for v in contour])
        is_corner = np.isin(contour, list(corners))
        is_upper = np.isin(contour, upper) & ~is_corner

        cset = set(contour.tolist())
        ring1 = np.array(sorted(set().union(*(adj[v] for v in contour)) - cset))
        r1set = set(ring1.tolist())
        ring2 = np.array(sorted(set().union(*(adj[v] for v in ring1)) - cset - r1set))
        w1 = np.zeros((len(ring1), len(contour)))
        for i, r in enumerate(ring1):
            js = [j for j, v in enumerate(contour) if v in adj[r]]
            w1[i, js] = RING_FOLLOW[0] / len(js)
        w2 = np.zeros((len(ring2), len(ring1)))
        for i, r in enumerate(ring2):
            js = [j for j, v in enumerate(ring1) if v in adj[r]]
            if js:
                w2[i, js] = RING_FOLLOW[1] / len(js)

        fine_upper = np.array(_boundary_path(boundary, matrix, upper))
        fine_lower = np.array(_boundary_path(boundary, matrix, lower))
        p_open = vertices.copy()
        p_closed = vertices.copy()
        p_closed[contour, 1] = y_closed
        f_open = matrix @ p_open
        f_closed = matrix @ p_closed

        driven = np.zeros(n)
        driven[np.concatenate([contour, ring1, ring2])] = 1.0
        region = np.flatnonzero(matrix @ driven > 0)

        lash = matrix[fine_upper][:, contour]  # sanity: margins depend on the contour only
        if abs(lash.sum(axis=1) - 1.0).max() > 1e-9:
            raise RuntimeError("template lid margin depends on more than the eye contour")
        colors[fine_upper] = UPPER_LASH_RGB
        colors[fine_lower] = LOWER_LASH_RGB
        colors[fine_upper[[0, -1]]] = LOWER_LASH_RGB

        eyes.append(EyeGeometry(
            contour=contour,
            contour_open_y=y_open,
            contour_closed_y=y_closed,
            contour_is_upper=is_upper,
            contour_is_corner=is_corner,
            ring1=ring1,
            ring2=ring2,
            ring1_from_contour=w1,
            ring2_from_ring1=w2,
            fine_upper=fine_upper,
            fine_lower=fine_lower,
            fine_upper_x=f_open[fine_upper, 0],
            fine_lower_x=f_open[fine_lower, 0],
            fine_upper_closed_y=f_closed[fine_upper, 1],
            fine_upper_open_y=f_open[fine_upper, 1],
            fine_lower_closed_y=f_closed[fine_lower, 1],
            fine_lower_open_y=f_open[fine_lower, 1],
            fine_region=region,
            pocket_loop=np.zeros(0, np.int64),
            pocket_front=np.zeros(0, np.int64),
            pocket_back=np.zeros(0, np.int64),
            pocket_center=-1,
        ))

    # Drop edge vertices no face uses (the green/unrefined parts), renumber.
    used = np.zeros(count, bool)
    used[fine_faces.ravel()] = True
    new_index = np.cumsum(used) - 1
    matrix = matrix[used]
    colors = colors[used]
    fine_faces = new_index[fine_faces]
    count = int(used.sum())
    for e, g in enumerate(eyes):
        eyes[e] = replace(g, fine_upper=new_index[g.fine_upper], fine_lower=new_index[g.fine_lower],
                          fine_region=new_index[g.fine_region[used[g.fine_region]]])

    # Eye pockets: a dark tube from each lid margin straight back to a flat cap, so whatever the
    # view, a line of sight into the eye opening meets the eyeball or the pocket (no background).
    rows = [matrix]
    pocket_faces = [fine_faces]
    for e, g in enumerate(eyes):
        loop = np.concatenate([g.fine_upper, g.fine_lower[::-1][1:-1]])
        k = len(loop)
        front = count + np.arange(k)
        back = count + k + np.arange(k)
        center = count + 2 * k
        rows += [matrix[loop], matrix[loop], sp.csr_matrix(matrix[loop].mean(axis=0))]
        nxt = np.roll(np.arange(k), -1)
        pocket_faces += [
            np.stack([front, front[nxt], back[nxt]], 1),
            np.stack([front, back[nxt], back], 1),
            np.stack([back[nxt], np.full(k, center), back], 1),
        ]
        # the pocket wall shows at the canthi: caruncle pink at the inner one, shaded conjunctiva
        # at the outer one, the colours fading into the dark pocket away from them
        x = (matrix[loop] @ vertices)[:, 0]
        x_in, x_out = vertices[INNER_CANTHI[e], 0], vertices[UPPER_LID[e][0], 0]
        near_in = np.clip(1.0 - (np.abs(x - x_in) - CARUNCLE_SIZE_CM[0]) / (CARUNCLE_SIZE_CM[1] - CARUNCLE_SIZE_CM[0]), 0.0, 1.0)[:, None]
        near_out = np.clip(1.0 - (np.abs(x - x_out) - 0.1) / 0.2, 0.0, 1.0)[:, None]
        wall = np.array(POCKET_RGB) * (1 - near_in - near_out) + near_in * np.array(CARUNCLE_CORE_RGB) + near_out * np.array(OUTER_CANTHUS_RGB)
        colors = np.concatenate([colors, wall, wall * POCKET_BACK_SHADE, np.array([POCKET_RGB])])
        eyes[e] = replace(g, pocket_loop=loop, pocket_front=front, pocket_back=back,
                          pocket_center=center)
        count += 2 * k + 1
    matrix = sp.vstack(rows).tocsr()
    fine_faces = np.concatenate(pocket_faces)

    m = len(fine_faces)
    normal_matrix = sp.csr_matrix(
        (np.ones(3 * m), (fine_faces.T.ravel(), np.tile(np.arange(m), 3))), shape=(count, m)
    )
    return Template(
        vertices_cm=vertices,
        subdivision=matrix,
        faces=fine_faces.astype(np.int32),
        colors_rgb=colors.astype(np.float32),
        normal_matrix=normal_matrix,
        eyes=(eyes[0], eyes[1]),
    )
