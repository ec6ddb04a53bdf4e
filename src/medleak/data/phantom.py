"""Procedural chest-radiograph phantoms: a data set that needs no download and no patient.

Each phantom is a frontal (PA) chest film built from an attenuation map: body soft tissue with an
elliptical cross-section, air-filled lungs, mediastinum, heart, spine, posterior and anterior ribs,
clavicles, shoulders, diaphragm domes and branching lung vessels. PNEUMONIA phantoms add lobar
consolidations or patchy bilateral opacities inside the lungs. The map goes through an exposure
curve (I = 1 - exp(-mu)), a window/gamma drawn per image, mild blur and film noise, and is rendered
at twice the asked size, then box-downsampled (antialiasing).

Randomness: phantom ``index`` of data set ``seed`` uses its own ``numpy.random.Generator(PCG64)``
seeded from ``(seed, index)``; anatomy is drawn from one child stream and pixel noise from another,
so the same phantom at 64 and 128 px shows the same patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from medleak.data.batch import CLASS_NAMES
from medleak.data.dataset import Dataset, Entry
from medleak.data.order import arrange
from medleak.data.spec import DataSpec
from medleak.errors import ConfigError

_MIN_WORK = 96  # below this the supersampled grid is too coarse for ribs and vessels


def phantom_label(index: int) -> int:
    """Class of phantom ``index``: even NORMAL (0), odd PNEUMONIA (1): index order is balanced."""
    return index % 2


def render_phantom(seed: int, index: int, size: int) -> tuple[np.ndarray, int]:
    """Phantom ``index`` of data set ``seed``: (size x size float32 image in [0, 1], label).

    Deterministic: the same (seed, index, size) always gives the same pixels.
    """
    for name, value, low in (("seed", seed, 0), ("index", index, 0), ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"phantom {name} must be an integer >= {low}, got {value!r}")
    label = phantom_label(int(index))
    anatomy_seq, noise_seq = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    anatomy = _draw_anatomy(np.random.Generator(np.random.PCG64(anatomy_seq)), label)
    noise = np.random.Generator(np.random.PCG64(noise_seq))

    factor = max(2, -(-_MIN_WORK // size))
    work = size * factor
    image = _render(anatomy, noise, work)
    image = image.reshape(size, factor, size, factor).mean(axis=(1, 3))
    return np.clip(image, 0.0, 1.0).astype(np.float32), label


def phantom_dataset(spec: DataSpec, seed: int) -> Dataset:
    """The phantom data set: ``spec.phantom_count`` images, phantom i rendered on demand."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"phantom seed must be an integer >= 0, got {seed!r}")
    indices = arrange(range(spec.phantom_count), phantom_label, lambda i: i, spec.order)
    size = spec.image_size
    return Dataset(
        name=f"phantom data set (seed {seed}, {spec.phantom_count} images)",
        entries=[
            Entry(f"phantom-{seed}-{i}", phantom_label(i), f"phantom-{seed}-{i}") for i in indices
        ],
        locators=indices,
        read=lambda i: render_phantom(seed, i, size)[0],
        image_size=size,
        resize=spec.resize,
        classes=CLASS_NAMES,
    )


# ---------------------------------------------------------------------------------------------
# Anatomy: every random draw that shapes the patient, independent of the pixel grid.


@dataclass(frozen=True)
class _Segment:
    x0: float
    y0: float
    x1: float
    y1: float
    width: float
    strength: float


@dataclass(frozen=True)
class _Blob:
    x: float
    y: float
    rx: float
    ry: float
    angle: float
    density: float
    sharp_top: bool


@dataclass(frozen=True)
class _Anatomy:
    label: int
    angle: float  # pose: in-plane rotation (radians), scale, shift
    scale: float
    shift_x: float
    shift_y: float
    chest_w: float  # half-width of the chest wall
    shoulder_y: float
    neck_w: float
    arms: bool
    lung_w: float  # lateral extent of the lungs
    apex_y: float
    base_y: float  # lowest point of the lungs (costophrenic angles)
    dome_h: float  # diaphragm dome height above the base
    right_dome_lift: float  # the (image-left) right hemidiaphragm sits higher
    mediastinum_w: float
    heart_x: float
    heart_y: float
    heart_rx: float
    heart_ry: float
    heart_tilt: float
    rib_top: float
    rib_spacing: float
    rib_curve: float
    rib_width: float
    rib_density: float
    clavicle_y: float
    clavicle_tilt: float
    soft_density: float
    air_depth: float
    bone_density: float
    stomach_bubble: float
    vessels: tuple[_Segment, ...]
    opacities: tuple[_Blob, ...]
    diffuse: float  # patchy bilateral (viral-like) opacity strength, 0 for none
    gain: float  # exposure: overall mu multiplier
    gamma: float
    black: float
    white: float
    blur: float
    grain: float


def _draw_anatomy(rng: np.random.Generator, label: int) -> _Anatomy:
    u = rng.uniform
    lung_w = u(0.74, 0.86)
    apex_y = u(-0.82, -0.66)
    base_y = u(0.5, 0.72)
    heart_x = u(0.08, 0.18)
    heart_y = u(0.3, 0.42)
    vessels = _draw_vessels(rng, lung_w, apex_y, base_y)
    opacities: tuple[_Blob, ...] = ()
    diffuse = 0.0
    if label == 1:
        kind = rng.random()
        if kind < 0.55:  # bacterial: one or two lobar/segmental consolidations
            opacities = tuple(
                _draw_consolidation(rng, lung_w, apex_y, base_y, heart_x)
                for _ in range(int(rng.integers(1, 3)))
            )
            diffuse = u(0.1, 0.3)
        elif kind < 0.85:  # viral / bronchopneumonia: bilateral patchy perihilar opacities
            diffuse = u(0.6, 0.9)
        else:  # both
            opacities = (_draw_consolidation(rng, lung_w, apex_y, base_y, heart_x),)
            diffuse = u(0.35, 0.6)
    return _Anatomy(
        label=label,
        angle=np.deg2rad(u(-4.0, 4.0)),
        scale=u(1.02, 1.18),
        shift_x=u(-0.05, 0.05),
        shift_y=u(-0.06, 0.06),
        chest_w=lung_w + u(0.07, 0.13),
        shoulder_y=apex_y - u(0.2, 0.42),
        neck_w=u(0.3, 0.4),
        arms=bool(rng.random() < 0.5),
        lung_w=lung_w,
        apex_y=apex_y,
        base_y=base_y,
        dome_h=u(0.12, 0.22),
        right_dome_lift=u(0.0, 0.08),
        mediastinum_w=u(0.09, 0.13),
        heart_x=heart_x,
        heart_y=heart_y,
        heart_rx=u(0.36, 0.46),
        heart_ry=u(0.26, 0.32),
        heart_tilt=np.deg2rad(u(-35.0, -15.0)),
        rib_top=apex_y + u(0.0, 0.06),
        rib_spacing=u(0.115, 0.145),
        rib_curve=u(0.7, 1.1),
        rib_width=u(0.022, 0.032),
        rib_density=u(0.22, 0.34),
        clavicle_y=apex_y + u(0.02, 0.1),
        clavicle_tilt=u(0.0, 0.2),
        soft_density=u(1.35, 1.65),
        air_depth=u(0.8, 1.1),
        bone_density=u(0.8, 1.2),
        stomach_bubble=u(0.0, 1.0) if rng.random() < 0.6 else 0.0,
        vessels=vessels,
        opacities=opacities,
        diffuse=diffuse,
        gain=u(0.8, 1.02),
        gamma=u(0.8, 1.25),
        black=u(0.0, 0.05),
        white=u(0.9, 1.0),
        blur=u(0.007, 0.014),
        grain=u(0.005, 0.014),
    )


def _draw_vessels(
    rng: np.random.Generator, lung_w: float, apex_y: float, base_y: float
) -> tuple[_Segment, ...]:
    """Pulmonary vessel trees fanning out of each hilum, thinning and fading outward."""
    segments: list[_Segment] = []
    for side in (-1.0, 1.0):
        hilum = (side * rng.uniform(0.17, 0.24), rng.uniform(-0.12, 0.02))
        # main trunks: up, lateral, down-lateral, down
        for base_angle in (-1.2, -0.4, 0.35, 1.05):
            angle = base_angle + rng.normal(0.0, 0.12)
            _grow(rng, segments, hilum, side, angle, 0.2, 0.02, 1.0, 4, lung_w, apex_y, base_y)
    return tuple(segments)


def _grow(
    rng: np.random.Generator,
    out: list[_Segment],
    start: tuple[float, float],
    side: float,
    angle: float,
    length: float,
    width: float,
    strength: float,
    depth: int,
    lung_w: float,
    apex_y: float,
    base_y: float,
) -> None:
    # angle is measured from the lateral direction, positive downward (image y grows downward)
    x0, y0 = start
    x1 = x0 + side * np.cos(angle) * length
    y1 = y0 + np.sin(angle) * length
    x1 = float(np.clip(x1, -lung_w, lung_w))
    y1 = float(np.clip(y1, apex_y + 0.05, base_y))
    out.append(_Segment(x0, y0, x1, y1, width, strength))
    if depth <= 1:
        return
    for _ in range(2 + int(rng.random() < 0.25)):
        child = angle + rng.normal(0.0, 0.45)
        _grow(
            rng,
            out,
            (x1, y1),
            side,
            child,
            length * rng.uniform(0.55, 0.8),
            width * 0.68,
            strength * 0.8,
            depth - 1,
            lung_w,
            apex_y,
            base_y,
        )


def _draw_consolidation(
    rng: np.random.Generator, lung_w: float, apex_y: float, base_y: float, heart_x: float
) -> _Blob:
    side = -1.0 if rng.random() < 0.55 else 1.0  # right lung (image left) a little more often
    zone = rng.random()
    if zone < 0.6:  # lower zone
        y = rng.uniform(0.1, base_y - 0.1)
    elif zone < 0.85:  # middle zone
        y = rng.uniform(-0.2, 0.15)
    else:  # upper zone
        y = rng.uniform(apex_y + 0.12, -0.2)
    x = side * rng.uniform(0.3, lung_w - 0.18)
    return _Blob(
        x=float(x),
        y=float(y),
        rx=rng.uniform(0.12, 0.26),
        ry=rng.uniform(0.1, 0.22),
        angle=rng.uniform(-0.6, 0.6),
        density=rng.uniform(0.55, 0.95),
        sharp_top=bool(rng.random() < 0.4),  # a consolidation bounded by a fissure
    )


# ---------------------------------------------------------------------------------------------
# Rendering on a work grid: normalised coordinates x, y in about [-1, 1], x toward the image right
# (the patient's left), y downward. Left and right structures are drawn together through u = |x|.


@dataclass(frozen=True)
class _Grid:
    x: np.ndarray
    y: np.ndarray
    px: float  # one work pixel, in normalised anatomy units
    n: int
    cos: float
    sin: float
    scale: float
    shift: tuple[float, float]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """(column, row) of an anatomy point on the work grid: the pose, inverted."""
        sx, sy = self.scale * x + self.shift[0], self.scale * y + self.shift[1]
        gx = self.cos * sx - self.sin * sy
        gy = self.sin * sx + self.cos * sy
        return (gx + 1.0) * self.n / 2.0 - 0.5, (gy + 1.0) * self.n / 2.0 - 0.5


def _grid(a: _Anatomy, n: int) -> _Grid:
    # float32 halves the memory traffic of the ~200 whole-grid operations below
    c = ((np.arange(n) + 0.5) * (2.0 / n) - 1.0).astype(np.float32)
    gx, gy = np.meshgrid(c, c)
    cos, sin = float(np.cos(a.angle)), float(np.sin(a.angle))
    x = ((cos * gx + sin * gy - a.shift_x) / a.scale).astype(np.float32)
    y = ((-sin * gx + cos * gy - a.shift_y) / a.scale).astype(np.float32)
    return _Grid(x, y, 2.0 / n / a.scale, n, cos, sin, a.scale, (a.shift_x, a.shift_y))


def _render(a: _Anatomy, noise: np.random.Generator, n: int) -> np.ndarray:
    g = _grid(a, n)
    x, y = g.x, g.y
    u = np.abs(x)
    edge = 1.2 * g.px

    body, thickness = _body(a, x, y, u, edge)
    lungs = _lungs(a, x, y, u, edge)
    heart = _ellipsoid(x, y, a.heart_x, a.heart_y, a.heart_rx, a.heart_ry, a.heart_tilt)
    knob = _ellipsoid(x, y, a.mediastinum_w + 0.01, a.apex_y + 0.42, 0.07, 0.06, 0.0)
    hila = _ellipsoid(u, y, 0.19, -0.04, 0.06, 0.1, 0.0)
    covered = np.clip(1.0 - 1.6 * heart - 1.4 * knob, 0.0, 1.0)

    # air: the lungs are darkest where they are thickest, mid-lateral and away from the domes
    air = lungs * covered
    air = a.air_depth * (0.5 * air + 0.5 * gaussian_filter(air, 0.05 / g.px))
    mu = a.soft_density * thickness - air
    mu += 0.08 * heart + 0.05 * knob + 0.1 * hila
    mu += _mediastinum(a, x, y, u, edge) + _abdomen(a, x, y, edge)

    vessels = _draw_segments(a.vessels, g)
    texture = _band_noise(noise, x.shape, 0.01 / g.px)
    vessels = gaussian_filter(vessels, 0.006 / g.px)
    mu += lungs * (0.12 * vessels + 0.025 * texture)
    if a.label == 1:
        # fluid replaces air: an opacity of 1 would bring the lung back to soft-tissue density
        mu += a.air_depth * lungs * covered * _opacity(a, noise, x, y, u, g.px)

    # ribs over the dense heart and abdomen barely show
    bones = _ribs(a, y, u) * (1.0 - 0.6 * heart) * (0.35 + 0.65 * _inside(y - a.base_y, 0.08))
    bones += _spine(a, x, y, u, edge) + _clavicles(a, y, u) + _shoulders(a, x, y, u, edge)
    mu = (mu + a.bone_density * bones) * body

    mu = gaussian_filter(np.maximum(mu, 0.0) * a.gain, a.blur / g.px)
    image = 1.0 - np.exp(-mu)
    image = np.clip((image - a.black) / (a.white - a.black), 0.0, 1.0) ** a.gamma
    # film grain: fine correlated noise, stronger where the film is darker (more exposure)
    grain = gaussian_filter(noise.standard_normal(image.shape, dtype=np.float32), 0.7)
    image = image + a.grain * grain * (1.3 - image) * 2.5
    return np.clip(image, 0.0, 1.0)


def _inside(distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft indicator of ``distance < 0`` (smoothstep over +-edge): antialiased region masks."""
    t = np.clip(0.5 - distance / (2.0 * edge), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ellipsoid(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, tilt: float
) -> np.ndarray:
    """Projected thickness of an ellipsoid (0 outside, 1 at its centre): a soft-edged organ."""
    cos, sin = np.cos(tilt), np.sin(tilt)
    p = (cos * (x - cx) + sin * (y - cy)) / rx
    q = (-sin * (x - cx) + cos * (y - cy)) / ry
    return np.sqrt(np.clip(1.0 - p * p - q * q, 0.0, None))


def _body(
    a: _Anatomy, x: np.ndarray, y: np.ndarray, u: np.ndarray, edge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Body silhouette (neck, sloping shoulders, chest wall, optional arms) and its thickness."""
    neck = np.exp(-((u / a.neck_w) ** 6))
    top = a.shoulder_y + 0.9 * np.maximum(u - a.neck_w, 0.0) ** 2 - 1.5 * neck
    body = _inside(top - y, 3 * edge) * _inside(u - a.chest_w, 3 * edge)
    # elliptical cross-section; the neck is thinner than the chest
    thickness = np.sqrt(np.clip(1.0 - (u / (a.chest_w + 0.12)) ** 2, 0.0, 1.0))
    thickness = thickness * (1.0 - 0.3 * neck * _inside(y - a.shoulder_y, 0.1))
    if a.arms:
        arm = _inside(np.abs(u - a.chest_w - 0.15) - 0.11, 3 * edge)
        arm = arm * _inside(a.shoulder_y + 0.1 - y, 0.1)
        body = np.maximum(body, arm)
        thickness = np.maximum(thickness, 0.6 * arm)
    return body, thickness


def _lungs(a: _Anatomy, x: np.ndarray, y: np.ndarray, u: np.ndarray, edge: float) -> np.ndarray:
    """Both lung fields: apex medial, lateral border widening downward, cut by the domes."""
    left = x > 0  # image right: the patient's left lung, beside the heart
    medial = a.mediastinum_w + 0.025 * left + 0.03 * _inside(0.1 - y, 0.1)
    grow = np.clip((y - a.apex_y) / (a.base_y - a.apex_y), 0.0, 1.0)
    lateral = medial + 0.1 + (a.lung_w - medial - 0.1) * grow**0.45
    horizontal = np.maximum(medial - u, u - lateral)
    # rounded apex: a circle caps the top of each lung
    top_r = 0.55 * 0.5 * (a.lung_w - a.mediastinum_w)
    apex_cy = a.apex_y + top_r
    apex = np.hypot(u - (medial + top_r + 0.02), y - apex_cy) - top_r
    outline = np.where(y < apex_cy, np.maximum(apex, horizontal), horizontal)
    # diaphragm domes: highest mid-lung, deepest at the costophrenic and cardiophrenic angles
    lift = np.where(left, 0.0, a.right_dome_lift)
    dome_c = 0.5 * (medial + a.lung_w) + 0.06
    dome_w = 0.45 * (a.lung_w - medial)
    dome = a.base_y - lift - a.dome_h * np.exp(-(((u - dome_c) / dome_w) ** 2))
    return _inside(outline, edge) * _inside(y - dome, edge)


def _mediastinum(
    a: _Anatomy, x: np.ndarray, y: np.ndarray, u: np.ndarray, edge: float
) -> np.ndarray:
    """Dense central column, minus the air of the trachea and the main bronchi."""
    central = _inside(u - a.mediastinum_w - 0.02, 6 * edge)
    mu = 0.1 * central
    carina = a.apex_y + 0.45 + 0.3 * (a.rib_spacing - 0.12)
    trachea = _inside(np.abs(x - 0.01) - 0.03, 3 * edge) * _inside(y - carina, 0.03)
    mu = mu - 0.18 * trachea
    # main bronchi: short dark tubes running down and out from the carina
    t = np.clip((y - carina) / 0.14, 0.0, 1.0)
    bronchus = _inside(np.abs(u - 0.01 - 0.13 * t) - 0.018, 3 * edge)
    mu = mu - 0.12 * bronchus * _inside(np.abs(y - carina - 0.07) - 0.07, 0.02)
    return mu


def _abdomen(a: _Anatomy, x: np.ndarray, y: np.ndarray, edge: float) -> np.ndarray:
    """Below the domes the abdomen is dense; a gastric air bubble may sit under the left dome."""
    mu = 0.06 * _inside(a.base_y - y, 0.15)
    if a.stomach_bubble > 0:
        bx = 0.55 * a.lung_w
        by = a.base_y - 0.4 * a.dome_h + 0.07
        bubble = _ellipsoid(x, y, bx, by, 0.1 + 0.05 * a.stomach_bubble, 0.06, 0.0)
        bubble = np.sqrt(bubble) * _inside(y - by - 0.01, 0.01)  # air-fluid level: flat bottom
        mu = mu - 0.3 * a.stomach_bubble * bubble
    return mu


def _spine(a: _Anatomy, x: np.ndarray, y: np.ndarray, u: np.ndarray, edge: float) -> np.ndarray:
    """Vertebral bodies with darker disc spaces and paired pedicles, one level per rib."""
    column = _inside(u - 0.065, 3 * edge)
    phase = (y - a.rib_top) / a.rib_spacing
    disc = np.cos(np.pi * phase) ** 12  # thin dark bands between the bodies
    mu = 0.16 * column * (1.0 - 0.5 * disc)
    frac = phase - np.round(phase)
    pedicle = np.hypot((u - 0.045) / 0.016, frac * a.rib_spacing / 0.024)
    mu = mu + 0.08 * _inside(pedicle - 1.0, 0.4)
    return mu * _inside(a.shoulder_y - 0.2 - y, 0.05)


def _rib_profile(d: np.ndarray, w: np.ndarray | float) -> np.ndarray:
    """Cross-section of a rib: a bony band whose cortical margins show brighter than its middle."""
    t = np.minimum(np.abs(d) / w, 1.3)
    solid = np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
    cortex = np.exp(-(((t - 0.85) / 0.15) ** 2))
    return 0.6 * solid + 0.5 * cortex


def _rib_distance(a: _Anatomy, y0: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the nearest of the ribs whose centre lines are ``y = y0_k + f(u)``.

    Rib k starts at ``rib_top + k s + k^2 s2`` beside the spine (lower ribs sit further apart), so
    inverting that quadratic gives every pixel's fractional rib number at once: no loop over ribs.
    """
    s, s2 = a.rib_spacing, 0.04 * a.rib_spacing
    offset = np.maximum(y0 - a.rib_top, -0.5 * s)
    k = (-s + np.sqrt(s * s + 4.0 * s2 * np.maximum(offset, 0.0))) / (2.0 * s2)
    k = np.where(offset < 0, offset / s, k)
    nearest = np.clip(np.round(k), 0, 10)
    local = s + 2.0 * s2 * nearest
    d = (k - nearest) * local / np.sqrt(1.0 + slope * slope)
    return d, nearest


def _ribs(a: _Anatomy, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Posterior ribs arch out of the spine and fall laterally; anterior ribs fall medially."""
    # the lateral arc, where a rib turns from posterior to anterior, follows the lung outline
    grow = np.clip((y - a.apex_y) / (a.base_y - a.apex_y), 0.0, 1.0)
    end = a.mediastinum_w + 0.18 + (a.lung_w - a.mediastinum_w - 0.13) * grow**0.45
    c, b = a.rib_curve, 0.5 * a.rib_curve  # b = c / 2: highest a quarter of the way out
    uc = np.minimum(np.maximum(u, 0.04), end)
    d, _ = _rib_distance(a, y - (c * uc - b) * uc, 2.0 * c * uc - b)
    reach = _inside(0.045 - u, 0.012) * _inside(u - end, 0.02)
    w = a.rib_width * (0.8 + 0.5 * uc)
    mu = a.rib_density * _rib_profile(d, w) * reach
    # anterior: from the lateral end down and inward, fading out where cartilage takes over
    f_end = (c * end - b) * end
    s = np.clip(end - u, 0.0, None)
    da, k = _rib_distance(a, y - f_end - 0.45 * s - 0.12 * s * s, 0.45 + 0.24 * s)
    fade = _inside(0.3 - u, 0.06) * _inside(u - end, 0.02) * (k >= 1)
    mu += 0.5 * a.rib_density * _rib_profile(da, 1.2 * a.rib_width) * fade
    # the lateral arcs of all ribs stack up into a bright rim along the chest wall
    span = _inside(a.apex_y + 0.12 - y, 0.06) * _inside(y - a.base_y - 0.05, 0.06)
    mu += 0.12 * _inside(np.abs(u - end - 0.01) - 0.03, 0.01) * span
    return mu


def _clavicles(a: _Anatomy, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    """S-shaped clavicles from the sternum out to the shoulders, thicker at the sternal end."""
    uc = np.clip(u, 0.07, 0.9)
    yc = a.clavicle_y - a.clavicle_tilt * (uc - 0.07) + 0.04 * np.sin(np.pi * (uc - 0.07) / 0.45)
    w = 0.03 - 0.01 * (uc - 0.07)
    reach = _inside(0.07 - u, 0.015) * _inside(u - 0.9, 0.03)
    return 0.45 * _rib_profile(y - yc, w) * reach


def _shoulders(a: _Anatomy, x: np.ndarray, y: np.ndarray, u: np.ndarray, edge: float) -> np.ndarray:
    """Humeral heads and the lateral border of each scapula, at the upper corners."""
    head = _ellipsoid(u, y, a.chest_w + 0.05, a.shoulder_y + 0.14, 0.14, 0.14, 0.0)
    mu = 0.5 * np.sqrt(head)
    # the scapula overlaps the upper lateral lung as a faint wedge
    scap = _inside(a.lung_w - 0.15 + 0.2 * (y - a.apex_y) - u, 4 * edge)
    scap = scap * _inside(y - a.apex_y - 0.6, 0.05) * _inside(a.apex_y - y, 0.05)
    return mu + 0.06 * scap


def _draw_segments(segments: tuple[_Segment, ...], g: _Grid) -> np.ndarray:
    """Sum of tubes along line segments (vessels), each drawn only inside its bounding box."""
    out = np.zeros_like(g.x)
    for s in segments:
        w = max(s.width, 0.6 * g.px)
        (c0, r0), (c1, r1) = g.to_pixel(s.x0, s.y0), g.to_pixel(s.x1, s.y1)
        margin = 3.0 * w / g.px + 1
        rows = slice(max(int(min(r0, r1) - margin), 0), min(int(max(r0, r1) + margin) + 1, g.n))
        cols = slice(max(int(min(c0, c1) - margin), 0), min(int(max(c0, c1) + margin) + 1, g.n))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        xs, ys = g.x[rows, cols], g.y[rows, cols]
        dx, dy = s.x1 - s.x0, s.y1 - s.y0
        t = np.clip(((xs - s.x0) * dx + (ys - s.y0) * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
        d2 = (xs - s.x0 - t * dx) ** 2 + (ys - s.y0 - t * dy) ** 2
        wt = w * (1.0 - 0.3 * t)
        out[rows, cols] += s.strength * np.exp(-d2 / (2.0 * wt * wt))
    return out


def _band_noise(noise: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise, rescaled to unit standard deviation."""
    field = gaussian_filter(noise.standard_normal(shape, dtype=np.float32), max(sigma, 0.5))
    return field / (field.std() + 1e-8)


def _opacity(
    a: _Anatomy,
    noise: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    px: float,
) -> np.ndarray:
    """Pneumonia: consolidations (dense, fluffy-edged) and patchy perihilar opacities, in [0, 1)."""
    out = np.zeros_like(x)
    fluff = _band_noise(noise, x.shape, 0.025 / px)
    for b in a.opacities:
        cos, sin = np.cos(b.angle), np.sin(b.angle)
        p = (cos * (x - b.x) + sin * (y - b.y)) / b.rx
        q = (-sin * (x - b.x) + cos * (y - b.y)) / b.ry
        # solid core, ill-defined border: the edge wanders with the noise
        dense = np.clip((1.0 - np.sqrt(p * p + q * q) + 0.15 * fluff) / 0.45, 0.0, 1.0)
        if b.sharp_top:  # bounded above by a fissure: a crisp edge
            dense = dense * _inside(b.y - 0.45 * b.ry - y, 0.01)
        out = np.maximum(out, b.density * dense)
    if a.diffuse > 0:
        patches = _band_noise(noise, x.shape, 0.06 / px)
        perihilar = np.exp(-(((u - 0.32) / 0.35) ** 2 + ((y - 0.15) / 0.5) ** 2))
        patchy = np.clip((patches + 0.8) / 2.4, 0.0, 1.0) * (0.3 + 0.7 * perihilar)
        out = np.maximum(out, a.diffuse * patchy)
    return np.clip(out, 0.0, 0.95)
