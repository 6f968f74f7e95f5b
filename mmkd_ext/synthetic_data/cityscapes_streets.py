"""Cityscapes-Streets: procedural street scenes written in the real Cityscapes layout.

Each image is a street seen from a car's camera, drawn in perspective from a random
vanishing point: sky, a road with lane markings between sidewalks and terrain strips,
roadsides of buildings (with windows), tree lines or open land, walls and fences, the
buildings closing the street, and, scaled by their depth, objects standing on the
ground: cars, trucks and buses (boxes with windows and wheels), persons, riders on
bicycles or motorcycles, parked bicycles, trees and poles carrying traffic signs,
traffic lights or lamps. Every class has its own colour range and texture, jittered
per image and object and covered by noise, so that a segmenter has to use shape and
context, not a pixel's colour. Some images show the bonnet of the ego vehicle or an
out-of-view border, labelled ignore (255) as in Cityscapes.

Layout (the one mmseg's ``CityscapesDataset`` reads unchanged)::

    root/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    root/meta.json        # generator settings; a rerun with equal settings skips

``<seq>`` and ``<frame>`` have six digits; a split's images are dealt round-robin to
its cities (train: aachen, bochum, bremen; val: frankfurt, lindau). Images are 8-bit
3-channel PNGs; labels are single-channel uint8 PNGs of train ids, 0-18 in the order
of :data:`CITYSCAPES_CLASSES` (``train``, id 16, never occurs) and 255 (ignore).

World units in this module: the camera is 1 unit (about 1.5 m) above a flat ground;
``X`` is lateral (right positive), ``Y`` height above the ground, ``z`` depth along the
street.
"""
import json
import os
import os.path as osp
import shutil
from functools import partial
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from .io import write_once

#: The 19 Cityscapes classes, in train-id order.
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                      'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
                      'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
                      'bicycle')
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION,
 TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
IGNORE = 255

CITIES = dict(train=('aachen', 'bochum', 'bremen'), val=('frankfurt', 'lindau'))
IMG_SUFFIX = '_leftImg8bit.png'
SEG_SUFFIX = '_gtFine_labelTrainIds.png'
_NAME = 'cityscapes_streets'
_ANNOTATED_FRAME = 19  # Cityscapes annotates the 20th frame of each snippet

RGB = Tuple[int, int, int]


class _Look(NamedTuple):
    """How a class's surfaces are coloured: base colours (RGB, one picked per surface),
    the spread of the colour jitter, per-pixel grain (std in grey levels) and the
    strength of fine (leaf-sized) and coarse relative mottling."""
    colours: Tuple[RGB, ...]
    jitter: float
    grain: float
    fine: float
    coarse: float


_CLOTHES = ((40, 40, 60), (170, 40, 40), (40, 70, 140), (200, 200, 190), (55, 55, 55),
            (140, 110, 80), (90, 120, 60))
_LOOKS = {
    ROAD: _Look(((88, 86, 92), (72, 72, 78), (105, 100, 98)), 6, 5, 0.04, 0.10),
    SIDEWALK: _Look(((160, 150, 150), (140, 130, 135), (175, 165, 150), (128, 122, 118)),
                    8, 4, 0.03, 0.06),
    BUILDING: _Look(((190, 170, 140), (150, 85, 65), (130, 130, 135), (210, 205, 195),
                     (200, 180, 110), (170, 120, 100), (110, 105, 100)), 12, 3, 0.02, 0.12),
    WALL: _Look(((165, 155, 135), (140, 140, 140), (180, 170, 150)), 10, 5, 0.05, 0.15),
    FENCE: _Look(((120, 100, 75), (145, 150, 155), (90, 110, 90)), 10, 4, 0.03, 0.05),
    POLE: _Look(((100, 100, 105), (80, 85, 80), (140, 140, 140)), 10, 3, 0.02, 0.05),
    TRAFFIC_LIGHT: _Look(((35, 35, 32), (50, 55, 45)), 6, 3, 0.02, 0.02),
    TRAFFIC_SIGN: _Look(((220, 200, 30), (30, 70, 170), (200, 30, 35), (235, 235, 235)),
                        10, 3, 0.02, 0.02),
    VEGETATION: _Look(((70, 110, 45), (50, 90, 40), (95, 120, 55), (60, 85, 50)),
                      12, 10, 0.35, 0.15),
    TERRAIN: _Look(((140, 150, 85), (120, 135, 70), (160, 145, 100)), 10, 7, 0.12, 0.12),
    SKY: _Look(((125, 170, 225), (200, 205, 212), (160, 190, 230)), 8, 1.5, 0.0, 0.03),
    PERSON: _Look(_CLOTHES, 20, 4, 0.03, 0.03),
    RIDER: _Look(_CLOTHES, 20, 4, 0.03, 0.03),
    CAR: _Look(((190, 190, 195), (30, 30, 35), (230, 230, 230), (160, 25, 25), (30, 50, 120),
                (90, 90, 95), (120, 130, 60)), 10, 2, 0.01, 0.04),
    TRUCK: _Look(((230, 230, 225), (180, 40, 30), (40, 70, 130), (200, 150, 40)),
                 10, 3, 0.01, 0.05),
    BUS: _Look(((220, 190, 40), (200, 40, 35), (40, 90, 160), (235, 235, 235)),
               10, 3, 0.01, 0.04),
    MOTORCYCLE: _Look(((40, 40, 45), (150, 30, 30), (60, 60, 70)), 10, 3, 0.02, 0.03),
    BICYCLE: _Look(((30, 30, 30), (40, 80, 150), (170, 30, 30), (200, 200, 200)),
                   10, 3, 0.02, 0.02),
    IGNORE: _Look(((30, 30, 35), (150, 150, 155), (60, 60, 90)), 8, 2, 0.01, 0.03),
}
# Colours of parts that carry their object's label.
_GLASS = (45, 55, 70)
_TYRE = (25, 25, 28)
_SKIN = ((230, 190, 160), (190, 140, 100), (120, 80, 55))
_LAMPS = ((255, 40, 30), (255, 190, 20), (40, 230, 90))
_MARKING = (215, 215, 210)


# --------------------------------------------------------------------------- canvas
def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  cell: float) -> np.ndarray:
    """``[height, width]`` float32 noise in about [-1, 1] that varies over ``cell`` px."""
    cell = max(cell, 1.0)
    grid = rng.uniform(-1, 1, (int(height / cell) + 2, int(width / cell) + 2))
    return cv2.resize(grid.astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)


class _Canvas:
    """An RGB image (float32 ``[H, W, 3]``) and its train-id label map (uint8
    ``[H, W]``), painted together. Noise fields shared by the paints of one image give
    each class its texture. ``rows`` (``[H, 1]``) and ``cols`` (``[1, W]``) are the
    pixel coordinates; per-pixel quantities derived from them broadcast to ``[H, W]``."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng = rng
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), IGNORE, np.uint8)
        self.rows = np.arange(height, dtype=np.float32)[:, None]
        self.cols = np.arange(width, dtype=np.float32)[None, :]
        self.grain = rng.standard_normal((height, width)).astype(np.float32)
        self.fine = _smooth_noise(rng, height, width, height / 64)
        self.coarse = _smooth_noise(rng, height, width, height / 12)

    @property
    def shape(self) -> Tuple[int, int]:
        return self.label.shape

    def jitter(self, rgb: Sequence[float], spread: float = 10.0) -> np.ndarray:
        """``rgb`` with random brightness and per-channel jitter (float32 ``[3]``)."""
        return (np.asarray(rgb, np.float32) * self.rng.uniform(0.85, 1.15)
                + self.rng.normal(0, spread, 3).astype(np.float32))

    def colour(self, train_id: int) -> np.ndarray:
        """A jittered colour (float32 ``[3]``) for one surface of class ``train_id``."""
        look = _LOOKS[train_id]
        return self.choose(look.colours, look.jitter)

    def choose(self, options: Sequence[RGB], spread: float = 10.0) -> np.ndarray:
        """A jittered colour picked from ``options``."""
        return self.jitter(options[self.rng.integers(len(options))], spread)

    def paint(self, mask: np.ndarray, train_id: int, colour: np.ndarray):
        """Label the pixels of ``mask`` (bool, broadcastable to ``[H, W]``) ``train_id``
        and colour them ``colour`` (RGB, broadcastable to ``[H, W, 3]``) in the class's
        texture."""
        look = _LOOKS[train_id]
        pixels = np.flatnonzero(np.broadcast_to(mask, self.shape))
        texture = 1 + look.fine * self.fine.flat[pixels] + look.coarse * self.coarse.flat[pixels]
        colour = np.asarray(colour, np.float32)
        if colour.ndim > 1:
            colour = np.broadcast_to(colour, self.image.shape).reshape(-1, 3)[pixels]
        rgb = colour * texture[:, None] + look.grain * self.grain.flat[pixels][:, None]
        self.image.reshape(-1, 3)[pixels] = rgb
        self.label.flat[pixels] = train_id

    def draw(self, draw: Callable[[np.ndarray], None]) -> np.ndarray:
        """The bool mask of what ``draw`` (a cv2 call on a uint8 image) draws in 1."""
        buffer = np.zeros(self.shape, np.uint8)
        draw(buffer)
        return buffer.astype(bool)


_SUBPIXEL = 4  # cv2 drawing with 1/16 pixel precision


def _fixed(points) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * (1 << _SUBPIXEL)).astype(np.int32)


def _polygon(canvas: _Canvas, points) -> np.ndarray:
    """Mask of the filled polygon through ``points`` (``[N, 2]`` image x, y)."""
    return canvas.draw(lambda buf: cv2.fillPoly(buf, [_fixed(points)], 1, cv2.LINE_8,
                                                shift=_SUBPIXEL))


def _ellipse(canvas: _Canvas, centre: Tuple[float, float], axes: Tuple[float, float],
             thickness: int = -1) -> np.ndarray:
    """Mask of an axis-aligned ellipse (image x, y; half-axes in pixels), filled or a
    ring ``thickness`` pixels wide."""
    centre, axes = tuple(map(int, _fixed(centre))), tuple(map(int, _fixed(axes)))
    return canvas.draw(lambda buf: cv2.ellipse(buf, centre, axes, 0, 0, 360, 1, thickness,
                                               cv2.LINE_8, _SUBPIXEL))


# --------------------------------------------------------------------------- camera
class _Camera(NamedTuple):
    """A pinhole camera 1 unit above the ground looking down the street (+z), without
    roll: the street's vanishing point is at image ``(centre, horizon)``."""
    horizon: float
    centre: float
    focal: float  # pixels

    def project(self, X, Y, z):
        """Image ``(x, y)`` of the world point ``(X, Y, z)``."""
        return self.centre + self.focal * X / z, self.horizon + self.focal * (1 - Y) / z


def _sample_camera(rng: np.random.Generator, height: int, width: int) -> _Camera:
    horizon = height * rng.uniform(0.36, 0.5)
    nearest_ground = rng.uniform(2.2, 3.4)  # depth seen at the bottom row
    return _Camera(horizon, width * rng.uniform(0.3, 0.7), nearest_ground * (height - horizon))


def _ground_hits(canvas: _Canvas, camera: _Camera):
    """Where the rays of the pixels below the horizon meet the ground.

    Returns:
        ``(below, X, z)``: bool ``[H, 1]``, and the lateral position (float32 ``[H, W]``)
        and depth (``[H, 1]``) there, meaningless above the horizon.
    """
    drop = canvas.rows - camera.horizon
    below = drop > 0
    drop = np.maximum(drop, 1e-3)
    return below, (canvas.cols - camera.centre) / drop, camera.focal / drop


def _wall_hits(canvas: _Canvas, camera: _Camera, lateral: float):
    """Where the pixels' rays meet the vertical plane ``X = lateral`` (a roadside).

    Returns:
        ``(hit, z, Y)``: bool ``[1, W]`` (the ray meets it in front of the camera), and
        the depth (float32 ``[1, W]``) and height (``[H, W]``) there, meaningless where
        not hit.
    """
    offset = canvas.cols - camera.centre
    hit = offset * lateral > 0
    z = camera.focal * lateral / np.where(hit, offset, 1)
    return hit, z, 1 - (canvas.rows - camera.horizon) * z / camera.focal


def _front_hits(canvas: _Canvas, camera: _Camera, depth: float):
    """Lateral position (float32 ``[1, W]``) and height (``[H, 1]``) where the pixels'
    rays meet the plane ``z = depth`` facing the camera."""
    scale = depth / camera.focal
    return (canvas.cols - camera.centre) * scale, 1 - (canvas.rows - camera.horizon) * scale


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


# --------------------------------------------------------------------------- street
class _Side(NamedTuple):
    """One side of the street: ``sign`` -1 (left) or 1 (right); ground ``bands``
    ``(inner, outer, train_id)`` outward from the kerb at ``|X| = kerb``; the roadside
    ``kind`` ('buildings', 'trees' or 'open') standing at ``|X| = line``; ``beyond``,
    the ground behind that line (seen through gaps)."""
    sign: int
    kerb: float
    bands: Tuple[Tuple[float, float, int], ...]
    line: float
    kind: str
    beyond: int


class _Street(NamedTuple):
    """The street's cross-section (``left`` and ``right`` sides, lane width), its
    length ``end`` (depth where buildings or trees close it) and whether it has a
    zebra crossing at depth ``crossing``."""
    left: _Side
    right: _Side
    lane: float
    end: float
    crossing: Optional[float]


def _sample_side(rng: np.random.Generator, sign: int, kerb: float) -> _Side:
    bands, edge = [], kerb
    if rng.random() < 0.85:
        bands.append((edge, edge + rng.uniform(1.0, 2.6), SIDEWALK))
        edge = bands[-1][1]
    if rng.random() < 0.35 or not bands:
        bands.append((edge, edge + rng.uniform(0.8, 3.0), TERRAIN))
        edge = bands[-1][1]
    kind = str(rng.choice(['buildings', 'trees', 'open'], p=[0.6, 0.25, 0.15]))
    return _Side(sign, kerb, tuple(bands), edge, kind,
                 SIDEWALK if kind == 'buildings' else TERRAIN)


def _sample_street(rng: np.random.Generator) -> _Street:
    lane = rng.uniform(1.9, 2.4)
    lanes_left, lanes_right = rng.integers(0, 3), rng.integers(1, 3)
    ego = rng.uniform(0.3, 0.7) * lane  # the camera's distance from its lane's left edge
    return _Street(left=_sample_side(rng, -1, lanes_left * lane + ego),
                   right=_sample_side(rng, 1, lanes_right * lane - ego),
                   lane=lane, end=_log_uniform(rng, 35, 150),
                   crossing=_log_uniform(rng, 5, 30) if rng.random() < 0.15 else None)


def _draw_sky(canvas: _Canvas, camera: _Camera):
    """A vertical gradient, paler towards the horizon, with some clouds."""
    height, width = canvas.shape
    zenith = canvas.colour(SKY)
    horizon = np.minimum(zenith + canvas.rng.uniform(20, 60), 250)
    t = np.clip(canvas.rows / max(camera.horizon, 1.0), 0, 1)[..., None]
    gradient = zenith * (1 - t) + horizon * t
    cover = canvas.rng.uniform(0, 0.7)
    clouds = _smooth_noise(canvas.rng, height, width, height / 5)
    clouds = np.clip((clouds - 1 + 2 * cover) * 2, 0, 1)[..., None] * cover
    canvas.paint(np.ones(canvas.shape, bool), SKY,
                 gradient * (1 - clouds) + canvas.jitter((235, 235, 235), 5) * clouds)


def _draw_ground(canvas: _Canvas, camera: _Camera, street: _Street):
    """Road with lane markings (and a zebra crossing), kerbside bands, and what lies
    behind the roadsides, painted outward-in on the ground plane."""
    below, X, z = _ground_hits(canvas, camera)
    for side in (street.left, street.right):
        outward = side.sign * X
        canvas.paint(below & (outward >= 0), side.beyond, canvas.colour(side.beyond))
        for inner, outer, train_id in reversed(side.bands):
            colour = canvas.colour(train_id)
            if train_id == SIDEWALK:  # paving joints
                joints = (np.mod(outward * 2, 1) < 0.08) | (np.mod(z * 2, 1) < 0.08)
                colour = colour * np.where(joints, 0.85, 1.0)[..., None]
            canvas.paint(below & (outward >= inner) & (outward < outer), train_id, colour)
    road = below & (X > -street.left.kerb) & (X < street.right.kerb)
    canvas.paint(road, ROAD, canvas.colour(ROAD))

    marking = np.zeros(canvas.shape, bool)
    dash = np.mod(z / canvas.rng.uniform(4, 8), 1) < 0.5
    for boundary in np.arange(-street.left.kerb + street.lane, street.right.kerb - 0.5,
                              street.lane):
        solid = canvas.rng.random() < 0.25
        marking |= (np.abs(X - boundary) < 0.06) & (solid | dash)
    if street.crossing is not None:
        marking |= (np.abs(z - street.crossing - 1.2) < 1.2) & (np.mod(X * 1.25, 1) < 0.5)
    canvas.paint(road & marking, ROAD, canvas.jitter(_MARKING, 8))


def _sample_spans(rng: np.random.Generator, start: float, stop: float,
                  lengths: Tuple[float, float]) -> np.ndarray:
    """Consecutive spans ``[N, 2]`` covering ``start..stop``, lengths log-uniform."""
    edges = [start]
    while edges[-1] < stop:
        edges.append(edges[-1] + _log_uniform(rng, *lengths))
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _span_index(spans: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Index of the span holding each ``position`` (clipped to the valid range)."""
    return np.clip(np.searchsorted(spans[:, 1], position), 0, len(spans) - 1)


def _windows(along: np.ndarray, Y: np.ndarray, top: np.ndarray, storey: float,
             bay: float) -> np.ndarray:
    """Mask of a grid of windows on a facade: ``along`` the facade and ``Y`` up it
    (world units, broadcastable to ``[H, W]``), below the facade's ``top``."""
    row, column = np.mod(Y / storey, 1), np.mod(along / bay, 1)
    return ((row > 0.35) & (row < 0.8) & (column > 0.25) & (column < 0.75)
            & (Y > 0.9) & (Y < top - 0.5))


def _draw_facades(canvas: _Canvas, hit: np.ndarray, along: np.ndarray, Y: np.ndarray,
                  spans: np.ndarray, heights: np.ndarray, light: float = 1.0):
    """Buildings side by side over ``spans`` of the ``along`` coordinate of a plane
    (the roadside or the street's end), ``heights`` (``[N]``, 0 for a gap) tall,
    each in its own colour, with windows."""
    which = _span_index(spans, along)
    top = heights[which]
    facade = hit & (along >= spans[0, 0]) & (along < spans[-1, 1]) & (Y >= 0) & (Y < top)
    colours = np.stack([canvas.colour(BUILDING) * light for _ in spans])[which]
    cornice = (Y > top - 0.25)[..., None]
    canvas.paint(facade, BUILDING, colours * np.where(cornice, 0.8, 1.0))
    windows = _windows(along - spans[which, 0], Y, top, canvas.rng.uniform(1.6, 2.3),
                       canvas.rng.uniform(1.1, 2.0))
    canvas.paint(facade & windows, BUILDING, canvas.jitter(_GLASS, 12))


def _canopy(rng: np.random.Generator, along: np.ndarray, height: float) -> np.ndarray:
    """Height of a tree line's top at each ``along`` position: ``height`` with random
    bumps."""
    bumps = np.zeros_like(along)
    for scale in (0.4, 1.2, 3.0):
        bumps += np.sin(along / scale + rng.uniform(0, 2 * np.pi)) * scale * 0.3
    return height + bumps


def _draw_roadside(canvas: _Canvas, camera: _Camera, side: _Side, street_end: float):
    """The vertical plane along one side: buildings, a tree line, or a low distant tree
    line across open land; sometimes a wall or fence in front."""
    rng = canvas.rng
    if side.kind == 'open':
        hit, z, Y = _wall_hits(canvas, camera, side.sign * (side.line + rng.uniform(8, 30)))
        near = hit & (z < street_end)
        canvas.paint(near & (Y >= 0) & (Y < _canopy(rng, z, rng.uniform(0.6, 2.5))),
                     VEGETATION, canvas.colour(VEGETATION))
        return
    hit, z, Y = _wall_hits(canvas, camera, side.sign * side.line)
    hit &= z < street_end
    if side.kind == 'buildings':
        spans = _sample_spans(rng, 0.3, street_end, (2.5, 14))
        heights = np.where(rng.random(len(spans)) < 0.12, 0, rng.uniform(2.5, 10, len(spans)))
        _draw_facades(canvas, hit, z, Y, spans, heights, light=rng.uniform(0.75, 1.15))
    else:
        canvas.paint(hit & (Y >= 0) & (Y < _canopy(rng, z, rng.uniform(2.5, 6))),
                     VEGETATION, canvas.colour(VEGETATION))
    if rng.random() < 0.3:
        start = _log_uniform(rng, 1, street_end / 2)
        _draw_barrier(canvas, camera, side.sign * (side.line - 0.05),
                      (start, start + rng.uniform(5, 40)), WALL if rng.random() < 0.5 else FENCE)


def _draw_barrier(canvas: _Canvas, camera: _Camera, lateral: float,
                  extent: Tuple[float, float], train_id: int):
    """A wall (brick courses) or fence (slats and a rail) along the plane ``X =
    lateral`` over depths ``extent``."""
    height = canvas.rng.uniform(0.5, 1.3)
    hit, z, Y = _wall_hits(canvas, camera, lateral)
    mask = hit & (z >= extent[0]) & (z < extent[1]) & (Y >= 0) & (Y < height)
    if train_id == WALL:
        course = np.floor(Y * 7)
        pattern = (np.mod(Y * 7, 1) < 0.15) | (np.mod(z * 2 + course * 0.5, 1) < 0.06)
        shade = np.where(pattern, 1.2, 1.0)
    else:
        pattern = (np.mod(z * canvas.rng.uniform(2, 4), 1) < 0.35) | (
            np.abs(Y - 0.8 * height) < 0.05)
        shade = np.where(pattern, 0.7, 1.0)
    canvas.paint(mask, train_id, canvas.colour(train_id) * shade[..., None])


def _draw_street_end(canvas: _Canvas, camera: _Camera, depth: float):
    """Buildings and trees across the street at ``depth``, facing the camera."""
    X, Y = _front_hits(canvas, camera, depth)
    spans = _sample_spans(canvas.rng, float(X.min()) - 1, float(X.max()) + 1, (1.5, 7))
    heights = canvas.rng.uniform(1.2, 9, len(spans))
    trees = canvas.rng.random(len(spans)) < 0.3
    everywhere = np.ones(canvas.shape, bool)
    _draw_facades(canvas, everywhere, X, Y, spans, np.where(trees, 0, heights))
    which = _span_index(spans, X)
    canvas.paint(trees[which] & (Y >= 0) & (Y < _canopy(canvas.rng, X, 0) + 0.6 * heights[which]),
                 VEGETATION, canvas.colour(VEGETATION))


# --------------------------------------------------------------------------- objects
class _Sprite:
    """Draws a flat upright object facing the camera, standing at ground point
    ``(X, z)``, in its own units: ``u`` to the right (mirrored if ``mirror``), ``Y`` up;
    1 = the camera's height."""

    def __init__(self, canvas: _Canvas, camera: _Camera, X: float, z: float,
                 mirror: bool = False):
        self.canvas = canvas
        self.x, self.y = camera.project(X, 0.0, z)
        self.scale = camera.focal / z
        self.flip = -1 if mirror else 1

    def point(self, u: float, Y: float) -> Tuple[float, float]:
        return self.x + self.flip * u * self.scale, self.y - Y * self.scale

    def box(self, u0: float, u1: float, Y0: float, Y1: float) -> np.ndarray:
        """Mask of a rectangle, at least one pixel wide."""
        half = max(abs(u1 - u0) * self.scale, 1.0) / 2
        (x, y0), (_, y1) = self.point((u0 + u1) / 2, Y0), self.point((u0 + u1) / 2, Y1)
        return _polygon(self.canvas, [(x - half, y0), (x + half, y0), (x + half, y1),
                                      (x - half, y1)])

    def ellipse(self, u: float, Y: float, radius_u: float, radius_Y: float,
                thickness: Optional[float] = None) -> np.ndarray:
        """Mask of a filled ellipse, or a ring ``thickness`` wide."""
        width = -1 if thickness is None else max(1, round(thickness * self.scale))
        return _ellipse(self.canvas, self.point(u, Y),
                        (radius_u * self.scale, radius_Y * self.scale), width)

    def line(self, points: Sequence[Tuple[float, float]], width: float) -> np.ndarray:
        """Mask of a polyline through ``points`` (``(u, Y)`` pairs), ``width`` thick."""
        pixels = _fixed([self.point(u, Y) for u, Y in points])
        thickness = max(1, round(width * self.scale))
        return self.canvas.draw(lambda buf: cv2.polylines(
            buf, [pixels], False, 1, thickness, cv2.LINE_8, _SUBPIXEL))

    def polygon(self, points: Sequence[Tuple[float, float]]) -> np.ndarray:
        return _polygon(self.canvas, [self.point(u, Y) for u, Y in points])


def _draw_figure(sprite: _Sprite, train_id: int, hip: Tuple[float, float],
                 shoulder: Tuple[float, float], feet: Sequence[Tuple[float, float]]):
    """A person's body (``train_id`` PERSON or RIDER): legs from ``hip`` to ``feet``,
    torso up to ``shoulder``, arms and head."""
    canvas = sprite.canvas
    legs = canvas.colour(train_id) * 0.7
    for foot in feet:
        canvas.paint(sprite.line([hip, foot], 0.1), train_id, legs)
    canvas.paint(sprite.line([hip, shoulder], 0.3), train_id, canvas.colour(train_id))
    arm = canvas.colour(train_id)
    for side in (-1, 1):
        hand = (shoulder[0] + side * 0.12, shoulder[1] - 0.35)
        canvas.paint(sprite.line([(shoulder[0] + side * 0.13, shoulder[1] - 0.03), hand],
                                 0.07), train_id, arm)
    head = (shoulder[0] + 0.02, shoulder[1] + 0.14)
    canvas.paint(sprite.ellipse(*head, 0.09, 0.11), train_id, canvas.choose(_SKIN))
    if canvas.rng.random() < 0.5:  # hair, hat or helmet
        canvas.paint(sprite.ellipse(head[0], head[1] + 0.04, 0.095, 0.08), train_id,
                     canvas.colour(train_id) * 0.6)


def _draw_person(sprite: _Sprite):
    size, stride = sprite.canvas.rng.uniform(0.85, 1.1), sprite.canvas.rng.uniform(0, 0.15)
    _draw_figure(sprite, PERSON, hip=(0, 0.5 * size), shoulder=(0, 0.85 * size),
                 feet=[(-stride - 0.05, 0.02), (stride + 0.05, 0.02)])


def _draw_bicycle(sprite: _Sprite):
    """A bicycle seen from the side; returns where its rider sits and holds on."""
    canvas = sprite.canvas
    frame = canvas.colour(BICYCLE)
    for hub in (-0.42, 0.42):
        canvas.paint(sprite.ellipse(hub, 0.25, 0.25, 0.25, thickness=0.05), BICYCLE,
                     canvas.jitter(_TYRE, 5))
    canvas.paint(sprite.line([(-0.42, 0.25), (0, 0.28), (-0.12, 0.65), (-0.42, 0.25)], 0.04),
                 BICYCLE, frame)
    canvas.paint(sprite.line([(0, 0.28), (0.3, 0.62), (0.42, 0.25)], 0.04), BICYCLE, frame)
    canvas.paint(sprite.line([(-0.12, 0.62), (0.3, 0.62), (0.28, 0.75)], 0.04), BICYCLE, frame)
    return (-0.12, 0.68), (0.28, 0.75)


def _draw_motorcycle(sprite: _Sprite):
    """A motorcycle seen from the side; returns where its rider sits and holds on."""
    canvas = sprite.canvas
    for hub in (-0.5, 0.5):
        canvas.paint(sprite.ellipse(hub, 0.27, 0.27, 0.27), MOTORCYCLE, canvas.jitter(_TYRE, 5))
        canvas.paint(sprite.ellipse(hub, 0.27, 0.1, 0.1), MOTORCYCLE, canvas.jitter((150,) * 3))
    canvas.paint(sprite.polygon([(-0.55, 0.45), (-0.2, 0.35), (0.45, 0.4), (0.35, 0.75),
                                 (-0.3, 0.7)]), MOTORCYCLE, canvas.colour(MOTORCYCLE))
    return (-0.12, 0.78), (0.3, 0.85)


def _draw_rider(sprite: _Sprite, vehicle: Callable[[_Sprite], tuple]):
    """A rider on a bicycle or motorcycle (``vehicle`` draws it)."""
    seat, handlebar = vehicle(sprite)
    shoulder = (seat[0] + 0.2, seat[1] + 0.5)
    _draw_figure(sprite, RIDER, hip=seat, shoulder=shoulder,
                 feet=[(seat[0] + 0.15, 0.3), (seat[0] + 0.05, 0.35)])
    sprite.canvas.paint(sprite.line([shoulder, handlebar], 0.07), RIDER,
                        sprite.canvas.colour(RIDER))


def _draw_tree(sprite: _Sprite):
    """A trunk and a crown of overlapping leafy blobs (all vegetation)."""
    canvas, rng = sprite.canvas, sprite.canvas.rng
    height = rng.uniform(2.5, 6)
    canvas.paint(sprite.box(-0.08, 0.08, 0, height * 0.5), VEGETATION,
                 canvas.jitter((90, 70, 50), 10))
    crown = canvas.colour(VEGETATION)
    for _ in range(rng.integers(2, 5)):
        radius = height * rng.uniform(0.15, 0.3)
        canvas.paint(sprite.ellipse(rng.uniform(-0.3, 0.3) * height,
                                    height * rng.uniform(0.55, 0.8), radius,
                                    radius * rng.uniform(0.8, 1.2)),
                     VEGETATION, crown * rng.uniform(0.85, 1.15))


def _draw_sign(sprite: _Sprite, u: float, Y: float):
    """A traffic sign (disc, triangle, square or diamond with an inner face)."""
    canvas, rng = sprite.canvas, sprite.canvas.rng
    r = rng.uniform(0.18, 0.28)
    shape = rng.integers(4)
    outer, inner = canvas.colour(TRAFFIC_SIGN), canvas.colour(TRAFFIC_SIGN)
    for scale, colour in ((1.0, outer), (0.7, inner)):
        s = r * scale
        if shape == 0:
            mask = sprite.ellipse(u, Y, s, s)
        elif shape == 1:
            mask = sprite.polygon([(u - s, Y - s * 0.8), (u + s, Y - s * 0.8), (u, Y + s)])
        elif shape == 2:
            mask = sprite.box(u - s, u + s, Y - s, Y + s)
        else:
            mask = sprite.polygon([(u - s, Y), (u, Y - s), (u + s, Y), (u, Y + s)])
        canvas.paint(mask, TRAFFIC_SIGN, colour)


def _draw_traffic_light(sprite: _Sprite, u: float, top: float):
    """A traffic light housing hanging from ``(u, top)`` with one lamp lit."""
    canvas = sprite.canvas
    canvas.paint(sprite.box(u - 0.12, u + 0.12, top - 0.62, top), TRAFFIC_LIGHT,
                 canvas.colour(TRAFFIC_LIGHT))
    lit = canvas.rng.integers(3)
    for index, lamp in enumerate(_LAMPS):
        colour = canvas.jitter(lamp, 10) if index == lit else canvas.jitter((60, 60, 55), 5)
        canvas.paint(sprite.ellipse(u, top - 0.1 - 0.2 * index, 0.07, 0.07), TRAFFIC_LIGHT,
                     colour)


def _draw_pole(sprite: _Sprite, inward: int):
    """A pole carrying signs, a traffic light (maybe on an arm reaching ``inward``
    over the road) or a lamp, or nothing."""
    canvas, rng = sprite.canvas, sprite.canvas.rng
    height, colour = rng.uniform(2.2, 4), canvas.colour(POLE)
    canvas.paint(sprite.box(-0.04, 0.04, 0, height), POLE, colour)
    kind = rng.choice(['sign', 'light', 'lamp', 'bare'], p=[0.45, 0.25, 0.2, 0.1])
    if kind == 'sign':
        for index in range(rng.integers(1, 3)):
            _draw_sign(sprite, 0, height - 0.3 - 0.6 * index)
    elif kind in ('light', 'lamp'):
        reach = inward * rng.uniform(0.8, 2.5) if rng.random() < 0.6 else 0
        canvas.paint(sprite.box(min(0, reach), max(0, reach), height - 0.06, height), POLE,
                     colour)
        if kind == 'light':
            _draw_traffic_light(sprite, reach, height)
        else:
            canvas.paint(sprite.box(reach - 0.18, reach + 0.18, height - 0.12, height), POLE,
                         canvas.jitter((200, 200, 190), 10))


def _box_faces(camera: _Camera, x: Tuple[float, float], Y: Tuple[float, float],
                   z: Tuple[float, float]) -> Dict[str, np.ndarray]:
    """Image corners (``[4, 2]``) of the faces of the box ``x * Y * z`` (world
    intervals) that the camera sees: 'back', and 'side' / 'top' when visible."""
    def face(points):
        return np.array([camera.project(*p) for p in points])

    faces = dict(back=face([(x[0], Y[0], z[0]), (x[1], Y[0], z[0]), (x[1], Y[1], z[0]),
                            (x[0], Y[1], z[0])]))
    if x[1] < 0 or x[0] > 0:
        side = x[1] if x[1] < 0 else x[0]
        faces['side'] = face([(side, Y[0], z[0]), (side, Y[1], z[0]), (side, Y[1], z[1]),
                              (side, Y[0], z[1])])
    if Y[1] < 1:
        faces['top'] = face([(x[0], Y[1], z[0]), (x[1], Y[1], z[0]), (x[1], Y[1], z[1]),
                             (x[0], Y[1], z[1])])
    return faces


def _draw_box(canvas: _Canvas, camera: _Camera, train_id: int, colour: np.ndarray,
              x: Tuple[float, float], Y: Tuple[float, float], z: Tuple[float, float],
              window: Optional[Tuple[float, float]] = None):
    """Paint the visible faces of a box (back face lit, side darker, top lighter),
    with a band of glass between heights ``window`` (fractions of the box height)."""
    shades = dict(back=1.0, side=0.8, top=1.15)
    faces = _box_faces(camera, x, Y, z)
    for name, corners in faces.items():
        canvas.paint(_polygon(canvas, corners), train_id, colour * shades[name])
    if window is None:
        return
    band = tuple(Y[0] + f * (Y[1] - Y[0]) for f in window)
    inset_x, inset_z = 0.1 * (x[1] - x[0]), 0.1 * (z[1] - z[0])
    panes = [_box_faces(camera, (x[0] + inset_x, x[1] - inset_x), band, z)['back']]
    if 'side' in faces:
        panes.append(_box_faces(camera, x, band, (z[0] + inset_z, z[1] - inset_z))['side'])
    glass = canvas.jitter(_GLASS, 10)
    for corners in panes:
        canvas.paint(_polygon(canvas, corners), train_id, glass)


def _draw_wheels(canvas: _Canvas, camera: _Camera, train_id: int, x: Tuple[float, float],
                 z: Tuple[float, float], radius: float):
    """Tyres under the back corners and, seen from the side, along the near side."""
    tyre = canvas.jitter(_TYRE, 5)
    for corner in x:
        canvas.paint(_polygon(canvas, _box_faces(
            camera, (corner - 0.1, corner + 0.1), (0, radius), (z[0] + 0.2, z[0] + 0.5))['back']),
            train_id, tyre)
    if x[1] < 0 or x[0] > 0:
        side = x[1] if x[1] < 0 else x[0]
        for axle in (z[0] + 0.8 * radius + 0.2, z[1] - 0.8 * radius - 0.2):
            corners = _box_faces(camera, (side, side), (0, 2 * radius),
                                     (axle - radius, axle + radius))['side']
            (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
            canvas.paint(_ellipse(canvas, ((x0 + x1) / 2, (y0 + y1) / 2),
                                  (max((x1 - x0) / 2, 0.5), (y1 - y0) / 2)), train_id, tyre)


#: Vehicle classes: (width, length, height) in camera heights, wheel radius.
_VEHICLES = {CAR: ((1.2, 2.9, 0.95), 0.22), TRUCK: ((1.6, 5.0, 2.2), 0.32),
             BUS: ((1.7, 8.0, 2.1), 0.32)}


def _draw_vehicle(canvas: _Canvas, camera: _Camera, train_id: int, X: float, z: float,
                  scale: float):
    """A car (body and a narrower cabin), truck (cab and cargo box) or bus (windows
    along its side), ``scale`` times its class's size, its back at depth ``z``, centred
    at ``X``."""
    (width, length, height), radius = _VEHICLES[train_id]
    width, length, height = width * scale, length * scale, height * scale
    x, z_range, colour = (X - width / 2, X + width / 2), (z, z + length), canvas.colour(train_id)
    if train_id == CAR:
        _draw_box(canvas, camera, CAR, colour, x, (0.15, 0.6 * height), z_range)
        inset = 0.08 * width
        _draw_box(canvas, camera, CAR, colour, (x[0] + inset, x[1] - inset),
                  (0.6 * height, height), (z + 0.25 * length, z + 0.7 * length),
                  window=(0.1, 0.9))
    elif train_id == TRUCK:
        _draw_box(canvas, camera, TRUCK, canvas.colour(TRUCK), x, (0.2, 0.75 * height),
                  (z + 0.78 * length, z + length), window=(0.55, 0.9))
        _draw_box(canvas, camera, TRUCK, colour, x, (0.3, height), (z, z + 0.75 * length))
    else:
        _draw_box(canvas, camera, BUS, colour, x, (0.15, height), z_range, window=(0.45, 0.85))
    _draw_wheels(canvas, camera, train_id, x, z_range, radius)


class _Placed(NamedTuple):
    """An object to draw at depth ``z`` (drawn far to near)."""
    z: float
    draw: Callable[[], None]


def _sample_vehicles(canvas: _Canvas, camera: _Camera, street: _Street,
                     nearest: float) -> List[_Placed]:
    """Vehicles in the lanes and parked along the kerbs, not overlapping."""
    rng, placed, taken = canvas.rng, [], []
    lanes = np.arange(-street.left.kerb + street.lane / 2, street.right.kerb, street.lane)
    for _ in range(rng.integers(0, 8)):
        train_id = int(rng.choice([CAR, TRUCK, BUS], p=[0.82, 0.1, 0.08]))
        scale = rng.uniform(0.9, 1.1)
        width, length = (scale * size for size in _VEHICLES[train_id][0][:2])
        if rng.random() < 0.35:  # parked
            side = street.left if rng.random() < 0.5 else street.right
            X = side.sign * (side.kerb - width / 2 - 0.05)
        else:
            X = float(rng.choice(lanes)) + rng.normal(0, 0.1)
        z = _log_uniform(rng, nearest * 0.9, min(60, street.end * 0.8))
        if abs(X) < width / 2 + 0.2 and z < 2 * nearest:
            continue  # right in front of the camera
        if any(abs(X - X2) < (width + w2) / 2 + 0.1 and z < z2 + l2 and z2 < z + length
               for X2, z2, w2, l2 in taken):
            continue
        taken.append((X, z, width, length))
        placed.append(_Placed(z, partial(_draw_vehicle, canvas, camera, train_id, X, z, scale)))
    return placed


def _spot(rng: np.random.Generator, side: _Side, train_ids: Tuple[int, ...],
          margin: float = 0.2) -> Optional[float]:
    """A lateral position in one of ``side``'s ground bands of ``train_ids``."""
    bands = [b for b in side.bands if b[2] in train_ids and b[1] - b[0] > 2 * margin]
    if not bands:
        return None
    inner, outer, _ = bands[rng.integers(len(bands))]
    return side.sign * rng.uniform(inner + margin, outer - margin)


def _sample_roadside_objects(canvas: _Canvas, camera: _Camera, street: _Street,
                             nearest: float) -> List[_Placed]:
    """Persons, parked bicycles, trees and poles on the sidewalks and terrain;
    riders in the kerbside lanes."""
    rng, placed = canvas.rng, []
    far = min(45.0, street.end * 0.9)

    def place(draw, X, z, mirror=None):
        mirror = rng.random() < 0.5 if mirror is None else mirror
        placed.append(_Placed(z, partial(draw, _Sprite(canvas, camera, X, z, mirror))))

    for side in (street.left, street.right):
        for _ in range(rng.integers(0, 4)):
            X = _spot(rng, side, (SIDEWALK, TERRAIN))
            if X is not None:
                place(_draw_person, X, _log_uniform(rng, nearest * 0.8, far))
        parked_bicycle = _spot(rng, side, (SIDEWALK,), 0.5) if rng.random() < 0.2 else None
        if parked_bicycle is not None:
            place(_draw_bicycle, parked_bicycle, _log_uniform(rng, nearest, far))
        if rng.random() < 0.3:
            X = side.sign * (side.kerb - 0.6)
            vehicle = _draw_bicycle if rng.random() < 0.6 else _draw_motorcycle
            place(partial(_draw_rider, vehicle=vehicle), X, _log_uniform(rng, nearest, far))
        tree_bands = (SIDEWALK, TERRAIN) if side.kind != 'buildings' else (TERRAIN,)
        z = nearest * rng.uniform(0.6, 2)
        while z < far:
            tree = None if rng.random() < 0.5 else _spot(rng, side, tree_bands, 0.4)
            if tree is None:
                place(partial(_draw_pole, inward=-side.sign), side.sign * (side.kerb + 0.3), z,
                      mirror=False)
            else:
                place(_draw_tree, tree, z)
            z += rng.uniform(5, 20)
    return placed


# --------------------------------------------------------------------------- image
def _draw_ignored_margins(canvas: _Canvas):
    """Sometimes the ego vehicle's bonnet at the bottom and/or an out-of-view border
    (label only), both ignore (255)."""
    rng = canvas.rng
    height, width = canvas.shape
    if rng.random() < 0.35:
        depth = height * rng.uniform(0.04, 0.12)
        bulge = 1 - ((canvas.cols - width * rng.uniform(0.4, 0.6)) / width) ** 2
        bonnet = canvas.rows >= height - depth * bulge
        shine = np.clip((canvas.rows - (height - depth)) / max(depth, 1), 0, 1)[..., None]
        canvas.paint(bonnet, IGNORE, canvas.colour(IGNORE) * (1.3 - 0.5 * shine))
    if rng.random() < 0.25:
        border = int(rng.integers(1, max(2, height // 40) + 1))
        inside = np.zeros(canvas.shape, bool)
        inside[border:-border, border:-border] = True
        canvas.label[~inside] = IGNORE


def _finish(canvas: _Canvas) -> np.ndarray:
    """Exposure, white balance, an occasional blur and sensor noise; uint8 RGB."""
    rng = canvas.rng
    image = canvas.image * rng.uniform(0.75, 1.2) * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    image = image + rng.normal(0, rng.uniform(2, 6), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_street_scene(rng: np.random.Generator, height: int = 128,
                        width: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """One street scene.

    Returns:
        ``(image, label)``: uint8 RGB ``[height, width, 3]`` and uint8 train ids
        ``[height, width]`` (0-18, 255 ignore).
    """
    canvas = _Canvas(rng, height, width)
    camera = _sample_camera(rng, height, width)
    street = _sample_street(rng)
    nearest = camera.focal / (height - camera.horizon)  # depth at the bottom row
    _draw_sky(canvas, camera)
    _draw_ground(canvas, camera, street)
    _draw_street_end(canvas, camera, street.end)
    for side in (street.left, street.right):
        _draw_roadside(canvas, camera, side, street.end)
    objects = (_sample_vehicles(canvas, camera, street, nearest)
               + _sample_roadside_objects(canvas, camera, street, nearest))
    for placed in sorted(objects, key=lambda o: -o.z):
        placed.draw()
    _draw_ignored_margins(canvas)
    return _finish(canvas), canvas.label


# --------------------------------------------------------------------------- files
def _file_stem(split: str, index: int) -> Tuple[str, str]:
    """City and file stem (``<city>_<seq>_<frame>``) of image ``index`` of ``split``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_{_ANNOTATED_FRAME:06d}'


def _remove_previous_output(root: str):
    """Delete the split folders of an earlier generation (so that a rerun with fewer
    images leaves none behind); only when ``root/meta.json`` shows that this generator
    wrote them."""
    meta_path = osp.join(root, 'meta.json')
    if not osp.isfile(meta_path):
        return
    with open(meta_path) as f:
        if json.load(f).get('name') != _NAME:
            return
    for folder in ('leftImg8bit', 'gtFine'):
        for split in CITIES:
            shutil.rmtree(osp.join(root, folder, split), ignore_errors=True)


def generate_street_scenes(root: str, num_train: int = 400, num_val: int = 100,
                           seed: int = 0, height: int = 128, width: int = 256) -> Dict:
    """Write Cityscapes-Streets under ``root``; skip if already written with these
    settings. Image ``i`` of a split depends only on ``(seed, split, i)``.

    Returns:
        The settings stored in ``root/meta.json``, with ``skipped=True`` when the
        dataset was already there.
    """
    meta = dict(name=_NAME, classes=list(CITYSCAPES_CLASSES), num_train=num_train,
                num_val=num_val, seed=seed, height=height, width=width, format=1)

    def write():
        _remove_previous_output(root)
        for split_index, (split, count) in enumerate((('train', num_train), ('val', num_val))):
            for index in range(count):
                image, label = render_street_scene(
                    np.random.default_rng([seed, split_index, index]), height, width)
                city, stem = _file_stem(split, index)
                img_dir = osp.join(root, 'leftImg8bit', split, city)
                seg_dir = osp.join(root, 'gtFine', split, city)
                os.makedirs(img_dir, exist_ok=True)
                os.makedirs(seg_dir, exist_ok=True)
                cv2.imwrite(osp.join(img_dir, stem + IMG_SUFFIX),
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                cv2.imwrite(osp.join(seg_dir, stem + SEG_SUFFIX), label)

    return write_once(root, meta, write)
