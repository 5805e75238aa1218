"""Synthetic periocular images: the data set that ships with the toolchain (no licence needed).

Each subject is a random draw of *identity* parameters: skin tone and its low-frequency
pattern, moles, eye shape (width, lid heights, canthal tilt), which eye (mirrored), eyebrow
(height, arch, thickness, colour, hair direction), lid crease, lashes, iris colour and an
iris texture in normalised polar coordinates (angular harmonics, crypts, collarette). Each
image then draws *nuisance*: head pose (roll, zoom, shift), gaze, pupil dilation, eyelid
opening, illumination (gain, colour temperature, a shading gradient), a corneal
reflection, sometimes an occluder (a hair strand or a glare patch), blur and sensor noise.

The iris texture lives on the normalised radius ``rr = (r - r_pupil) / (r_iris - r_pupil)``
(Daugman's rubber sheet), so it stretches with dilation as a real iris does.

Rendering is vectorised numpy over pixel grids; at 224 px an image takes a few ms. Every
subject and image has its own generator seeded by ``(seed, subject, image)``, so output is
deterministic per seed and adding subjects or images leaves existing files unchanged.
Output is the ``per-subject`` layout: ``OUT/subject_0000/subject_0000_00.png`` + ``synth.json``.

With ``layout="ufpr"`` or ``"visob"`` every subject has both eyes (two identities that share skin, brow
and iris colours but not the iris texture or eye shape) captured over sessions, each session with its own
illumination cast, and the files are named like the licensed data sets, so the cross-session protocols
can be exercised without them (see :data:`SESSION_LAYOUTS`):

* ``ufpr``: ``OUT/C<n>/C<n>_S<session>_I<image>_<L|R>.png`` (n from 1; sessions 1-3);
* ``visob``: ``OUT/<phone>/<lighting>/Visit<v>/<1000 + n>_<image>_<L|R>_1.png`` (phones iPhone and
  Samsung, lighting Office and Dim, visits 1-2).

``images_per_subject`` is then per eye, dealt round-robin over the sessions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from toolchain import jsonio
from toolchain.data.config import SYNTH_LAYOUTS, SynthConfig
from toolchain.errors import DataError
from toolchain.fsutil import atomic_dir

GENERATOR_VERSION = 1
_SUBJECT_STREAM, _IMAGE_STREAM = 1, 2

_SKIN_LIGHT = np.array([0.94, 0.80, 0.69])
_SKIN_DARK = np.array([0.33, 0.22, 0.16])
_IRIS_PALETTE = np.array([  # (dark, light) pairs: brown, dark brown, hazel, green, blue, grey
    [[0.22, 0.12, 0.05], [0.55, 0.33, 0.15]], [[0.10, 0.06, 0.03], [0.35, 0.20, 0.09]],
    [[0.30, 0.22, 0.08], [0.62, 0.52, 0.25]], [[0.16, 0.25, 0.12], [0.45, 0.60, 0.35]],
    [[0.12, 0.22, 0.38], [0.45, 0.62, 0.80]], [[0.25, 0.28, 0.30], [0.60, 0.64, 0.66]]])
_HAIR = np.array([[0.06, 0.05, 0.04], [0.25, 0.15, 0.08], [0.45, 0.32, 0.18], [0.62, 0.50, 0.30]])


@dataclass(frozen=True)
class Subject:
    """Identity parameters (canonical coordinates: x right, y down, both in [-1, 1])."""

    skin: np.ndarray
    skin_waves: np.ndarray  # (3, 4): kx, ky, phase, amplitude
    moles: np.ndarray  # (M, 4): x, y, radius, darkness
    mirror: float  # +1 or -1: which eye
    eye_y: float
    eye_w: float
    lid_up: float
    lid_lo: float
    tilt: float
    lid_pow: float
    iris_r: float
    iris_dark: np.ndarray
    iris_light: np.ndarray
    harmonics: np.ndarray  # (K, 4): n, amplitude, phase, twist
    crypts: np.ndarray  # (C, 4): rr, phi, size, depth
    collarette: float
    brow_y: float
    brow_arch: float
    brow_peak: float
    brow_thick: float
    brow_x: tuple[float, float]
    brow_color: np.ndarray
    brow_angle: float
    crease: float
    lash_n: float
    lash_len: float
    socket: float


def make_subject(rng: np.random.Generator) -> Subject:
    """Draw one subject's identity parameters (arrays float32, scalars Python floats: rendering stays float32)."""
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    t = rng.uniform(0, 1)
    skin = (1 - t) * _SKIN_LIGHT + t * _SKIN_DARK + rng.normal(0, 0.02, 3)
    waves = np.column_stack([rng.uniform(-4, 4, 3), rng.uniform(-4, 4, 3), rng.uniform(0, 2 * np.pi, 3),
                             rng.uniform(0.01, 0.05, 3)])
    m = rng.integers(0, 5)
    moles = np.column_stack([rng.uniform(-0.85, 0.85, m), rng.choice([-1, 1], m) * rng.uniform(0.35, 0.85, m),
                             rng.uniform(0.015, 0.04, m), rng.uniform(0.3, 0.7, m)])
    k = 7
    harmonics = np.column_stack([rng.integers(3, 40, k), rng.uniform(0.2, 1.0, k), rng.uniform(0, 2 * np.pi, k),
                                 rng.uniform(-6, 6, k)])
    c = rng.integers(6, 16)
    crypts = np.column_stack([rng.uniform(0.15, 0.95, c), rng.uniform(0, 2 * np.pi, c), rng.uniform(0.04, 0.12, c),
                              rng.uniform(0.4, 1.2, c)])
    pal = _IRIS_PALETTE[rng.integers(len(_IRIS_PALETTE))]
    x0 = rng.uniform(-0.85, -0.6)
    return Subject(
        skin=f32(np.clip(skin, 0.1, 1.0)), skin_waves=f32(waves), moles=f32(moles), mirror=float(rng.choice([-1.0, 1.0])),
        eye_y=rng.uniform(0.0, 0.14), eye_w=rng.uniform(0.48, 0.64), lid_up=rng.uniform(0.2, 0.3),
        lid_lo=rng.uniform(0.1, 0.18), tilt=rng.uniform(-0.15, 0.15), lid_pow=rng.uniform(0.7, 1.3),
        iris_r=rng.uniform(0.18, 0.25), iris_dark=f32(pal[0] * rng.uniform(0.85, 1.15, 3)),
        iris_light=f32(pal[1] * rng.uniform(0.85, 1.15, 3)), harmonics=f32(harmonics), crypts=f32(crypts),
        collarette=rng.uniform(0.25, 0.5), brow_y=rng.uniform(-0.62, -0.42), brow_arch=rng.uniform(0.04, 0.2),
        brow_peak=rng.uniform(-0.1, 0.35), brow_thick=rng.uniform(0.05, 0.13), brow_x=(x0, rng.uniform(0.65, 0.95)),
        brow_color=f32(_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)), brow_angle=rng.uniform(0.2, 0.8),
        crease=rng.uniform(0.06, 0.14), lash_n=rng.uniform(22, 40), lash_len=rng.uniform(0.04, 0.09),
        socket=rng.uniform(0.05, 0.25))


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """0..1 coverage of the region ``d > 0`` with an anti-aliased edge ``edge`` wide."""
    return np.clip(0.5 + d / edge, 0.0, 1.0)


def _blend(img: np.ndarray, alpha: np.ndarray, color: np.ndarray | float) -> None:
    img *= 1.0 - alpha[..., None]
    img += alpha[..., None] * color


def _gauss_blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return img
    r = int(np.ceil(3 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_px) ** 2)
    k = (k / k.sum()).tolist()
    for axis in (0, 1):
        pad = [(r, r) if a == axis else (0, 0) for a in range(3)]
        p = np.pad(img, pad, mode="edge")
        n = img.shape[axis]
        img = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return img


def render(subject: Subject, rng: np.random.Generator, size: int) -> np.ndarray:
    """One image of ``subject`` with nuisance drawn from ``rng``: uint8 (size, size, 3) RGB."""
    s = subject
    px = 2.0 / size  # one pixel in canonical units
    edge = 1.5 * px
    u = ((np.arange(size, dtype=np.float64) + 0.5) * px - 1.0).astype(np.float32)
    ux, uy = np.meshgrid(u, u)
    # pose: canonical = R(-roll) (pixel - shift) / zoom
    roll = float(np.clip(rng.normal(0, 0.09), -0.2, 0.2))
    zoom = rng.uniform(0.88, 1.12)
    tx, ty = rng.uniform(-0.09, 0.09, 2).tolist()
    cx, cy = (ux - tx) / zoom, (uy - ty) / zoom
    cr, sr = math.cos(roll), math.sin(roll)
    x = (cr * cx + sr * cy) * s.mirror
    y = -sr * cx * s.mirror + cr * cy
    edge /= zoom

    # skin, its pattern, the eye socket's shade, moles
    wav = sum(a * np.cos(kx * x + ky * y + ph) for kx, ky, ph, a in s.skin_waves.tolist())
    img = np.broadcast_to(s.skin, (size, size, 3)) * (1.0 + wav)[..., None]
    img = img * (1.0 - s.socket * np.exp(-((x / 0.75) ** 2 + ((y - s.eye_y) / 0.4) ** 2)))[..., None]
    for mx, my, mr, md in s.moles.tolist():
        _blend(img, md * _soft(mr - np.hypot(x - mx, y - my), edge), s.skin * 0.35)

    # eyebrow: a tapered band around an arched centre line, with hair stripes
    x0, x1 = s.brow_x
    t = np.clip((x - x0) / (x1 - x0), 0.0, 1.0)
    centre = s.brow_y - s.brow_arch * np.exp(-((x - s.brow_peak) / 0.45) ** 2)
    half = s.brow_thick * (0.45 + 0.55 * np.sin(np.pi * np.clip(t * 0.9 + 0.1, 0, 1)))
    inside = np.minimum(half - np.abs(y - centre), np.minimum(x - x0, x1 - x))
    hair = 0.75 + 0.25 * np.cos(220.0 * (x * np.sin(s.brow_angle) - (y - centre) * np.cos(s.brow_angle)))
    _blend(img, 0.9 * _soft(inside, 3 * edge) * hair, s.brow_color)

    # eyelids: upper and lower curves meeting at the corners; openness varies per image
    openness = rng.uniform(0.5, 1.1)
    xn = np.clip(1.0 - (x / s.eye_w) ** 2, 0.0, None) ** s.lid_pow
    mid = s.eye_y + s.tilt * x
    up = mid - s.lid_up * openness * xn
    lo = mid + s.lid_lo * (0.8 + 0.2 * openness) * xn
    crease = mid - (s.lid_up + s.crease) * xn
    _blend(img, 0.35 * _soft(0.012 - np.abs(y - crease), edge) * (xn > 0.05), s.skin * 0.45)
    eye = _soft(np.minimum(np.minimum(y - up, lo - y), s.eye_w - np.abs(x)), edge)

    # sclera, iris and pupil (gaze moves the iris; dilation moves the pupil edge)
    gx = rng.uniform(-0.3, 0.3) * s.eye_w
    gy = rng.uniform(-0.05, 0.05)
    iy = s.eye_y + s.tilt * gx + gy
    r = np.hypot(x - gx, y - iy)
    rp = s.iris_r * rng.uniform(0.22, 0.6)
    # the texture only where the iris is (a few % of the pixels): evaluate on those, as 1-D arrays
    sel = r < s.iris_r + 2 * edge
    rs = r[sel]
    phi = np.arctan2(y[sel] - iy, x[sel] - gx)
    rr = np.clip((rs - rp) / (s.iris_r - rp), 0.0, 1.0)
    tex = sum(a * np.cos(n * phi + ph + tw * rr) for n, a, ph, tw in s.harmonics.tolist()) / len(s.harmonics) * 1.6
    for cr, cphi, csz, cdep in s.crypts.tolist():
        dphi = (phi - cphi + np.pi) % (2 * np.pi) - np.pi
        tex = tex - cdep * np.exp(-((rr - cr) ** 2 + (dphi * 0.5) ** 2) / csz**2)
    tex = tex + 0.8 * np.exp(-((rr - s.collarette) / 0.05) ** 2)
    mix = np.clip(0.5 + 0.35 * np.tanh(tex), 0.0, 1.0)[..., None]
    iris_rgb = np.zeros((size, size, 3), np.float32)
    iris_rgb[sel] = ((1 - mix) * s.iris_dark + mix * s.iris_light) * (
        0.55 + 0.45 * np.clip((s.iris_r - rs) / (0.25 * s.iris_r), 0, 1))[..., None]  # dark limbus ring
    sclera = np.array([0.93, 0.89, 0.86], np.float32) * (1.0 - 0.25 * np.clip(np.abs(x) / s.eye_w, 0, 1) ** 3)[..., None]
    sclera = sclera * np.array([1.0, 0.93, 0.92], np.float32) ** (np.abs(x) / s.eye_w)[..., None]  # pink corners
    inner = sclera.copy()
    _blend(inner, _soft(s.iris_r - r, edge), 0.0)
    inner += _soft(s.iris_r - r, edge)[..., None] * iris_rgb
    _blend(inner, _soft(rp - r, edge), np.array([0.03, 0.03, 0.035], np.float32))
    inner *= (1.0 - 0.45 * np.exp(-np.clip(y - up, 0, None) / 0.05))[..., None]  # the upper lid's shadow
    if rng.uniform() < 0.85:  # corneal reflection of the light source
        hx, hy = gx + rng.uniform(-0.6, 0.6) * s.iris_r, s.eye_y + gy + rng.uniform(-0.6, 0.2) * s.iris_r
        _blend(inner, 0.9 * _soft(rng.uniform(0.02, 0.045) - np.hypot(x - hx, y - hy), edge), 1.0)
    _blend(img, eye, 0.0)
    img += eye[..., None] * inner

    # lashes: dark strokes above the upper lid (slanted outwards), fainter below the lower one
    lash_x = x + 0.35 * (up - y) * np.sign(x)
    stroke = (0.5 + 0.5 * np.cos(2 * np.pi * s.lash_n * lash_x / (2 * s.eye_w))) ** 6
    above = up - y
    band = (above > 0) & (above < s.lash_len * (0.4 + 0.6 * xn)) & (xn > 0.02)
    _blend(img, 0.85 * band * stroke * (1 - above / s.lash_len) + 0.8 * _soft(0.008 - np.abs(y - up), edge) * (xn > 0.02),
           np.array([0.05, 0.04, 0.04], np.float32))
    _blend(img, 0.3 * _soft(0.006 - np.abs(y - lo), edge) * (xn > 0.02), s.skin * 0.4)

    # occluders
    kind = rng.uniform()
    if kind < 0.15:  # a strand of hair across the image
        a, b, c = rng.uniform(-0.6, 0.6), rng.uniform(-0.8, 0.8), rng.uniform(-3, 3)
        d = np.abs(uy - (a * ux + b + 0.05 * np.sin(c * ux))) / np.sqrt(1 + a * a)
        _blend(img, 0.85 * _soft(rng.uniform(0.01, 0.03) - d, px), _HAIR[rng.integers(2)].astype(np.float32))
    elif kind < 0.3:  # glare from glasses
        gx2, gy2 = rng.uniform(-0.8, 0.8, 2).tolist()
        _blend(img, 0.7 * _soft(rng.uniform(0.1, 0.25) - np.hypot((ux - gx2) / 1.8, uy - gy2), 6 * px), 1.0)

    # illumination: gain, white balance, a shading gradient
    ang = rng.uniform(0, 2 * np.pi)
    shade = 1.0 + rng.uniform(0, 0.45) * (math.cos(ang) * ux + math.sin(ang) * uy) / 2
    img = img * (rng.uniform(0.55, 1.3) * shade)[..., None] * (1.0 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)
    img = _gauss_blur(img, rng.uniform(0.0, 0.009) * size)
    img = img + rng.uniform(0.005, 0.04) * rng.standard_normal(img.shape, dtype=np.float32)
    assert img.dtype == np.float32, img.dtype  # float64 creeping in doubles the time
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def subject_name(i: int) -> str:
    return f"subject_{i:04d}"


def subject_rng(seed: int, subject: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SUBJECT_STREAM, subject])


def image_rng(seed: int, subject: int, image: int) -> np.random.Generator:
    return np.random.default_rng([seed, _IMAGE_STREAM, subject, image])


#: Sessions of the synthetic layouts with sessions: relative folder and file name of image ``k`` of an eye.
SESSION_LAYOUTS: dict[str, list[str]] = {
    "ufpr": ["S1", "S2", "S3"],
    "visob": [f"{phone}/{light}/Visit{v}" for phone in ("iPhone", "Samsung") for light in ("Office", "Dim")
              for v in (1, 2)],
}
_EYE_STREAM, _SESSION_STREAM = 3, 4


def _file_name(layout: str, subject: int, session: str, image: int, eye: str) -> str:
    if layout == "ufpr":
        return f"C{subject + 1}/C{subject + 1}_{session}_I{image + 1}_{eye}.png"
    return f"{session}/{1000 + subject}_{image + 1:02d}_{eye}_1.png"


def other_eye(left: Subject, rng: np.random.Generator) -> Subject:
    """The subject's other eye: mirrored, same skin, brow and iris colours, its own texture and shape."""
    from dataclasses import replace

    return replace(make_subject(rng), skin=left.skin, skin_waves=left.skin_waves, mirror=-left.mirror,
                   iris_dark=left.iris_dark, iris_light=left.iris_light, brow_color=left.brow_color)


def _session_cast(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A session's illumination: one gain and white balance for all its images (what makes sessions differ)."""
    gain = rng.uniform(0.75, 1.2) * (1.0 + rng.uniform(-0.1, 0.1, 3))
    return np.clip(pixels.astype(np.float32) * gain.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


#: Visible RGB -> a near-infrared-like intensity. At 850 nm melanin absorbs little, so skin and dark irises come
#: out bright and the iris texture shows (the red channel is the closest visible band); blue carries almost nothing.
NIR_WEIGHTS = np.array([0.70, 0.22, 0.08], np.float32)


def _save(pixels: np.ndarray, path: Path, channels: int) -> None:
    if channels == 1:
        nir = np.clip(pixels.astype(np.float32) @ NIR_WEIGHTS + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(nir, "L").save(path, compress_level=1)
    else:
        Image.fromarray(pixels, "RGB").save(path, compress_level=1)


def generate(out: str | Path, subjects: int = SynthConfig.subjects, images_per_subject: int = SynthConfig.images_per_subject,
             size: int = SynthConfig.size, seed: int = SynthConfig.seed, progress: Callable[[int, int], None] | None = None,
             force: bool = False, layout: str = SynthConfig.layout, channels: int = SynthConfig.channels) -> Path:
    """Write a synthetic periocular data set (``per-subject``, ``ufpr`` or ``visob`` layout); returns ``out``.

    Args:
        out: folder to write (replaced atomically when complete).
        subjects: number of subjects (identities).
        images_per_subject: images per subject.
        size: image side in pixels (at least 32).
        seed: the data set's seed: same seed, same bytes.
        progress: ``progress(done, total)`` after each image.
        force: replace ``out`` even when it is not a synthetic data set this tool wrote (default: refuse).
        layout: ``per-subject`` (one eye per subject), ``ufpr`` or ``visob`` (both eyes over sessions; see the
            module docstring; ``images_per_subject`` is per eye).
        channels: 3 (RGB) or 1 (NIR-like 8-bit grayscale, :data:`NIR_WEIGHTS`).
    """
    if subjects < 1 or images_per_subject < 1:
        raise DataError(f"need at least 1 subject and 1 image per subject, got {subjects} and {images_per_subject}")
    if size < 32:
        raise DataError(f"--size {size} is too small for a periocular image (at least 32 pixels)")
    if layout not in SYNTH_LAYOUTS:
        raise DataError(f"unknown synthetic layout {layout!r}; known: {', '.join(SYNTH_LAYOUTS)}")
    cfg = SynthConfig(subjects, images_per_subject, size, seed, layout, channels)
    total = subjects * images_per_subject * (1 if layout == "per-subject" else 2)
    done = 0
    with atomic_dir(out, "synth", force) as tmp:
        for i in range(subjects if layout != "per-subject" else 0):
            left = make_subject(subject_rng(seed, i))
            eyes = {"L": left, "R": other_eye(left, np.random.default_rng([seed, _EYE_STREAM, i]))}
            sessions = SESSION_LAYOUTS[layout]
            for e, (eye, subj) in enumerate(eyes.items()):
                for j in range(images_per_subject):
                    s_idx = j % len(sessions)
                    pixels = render(subj, image_rng(seed, i, 2 * j + e), size)
                    pixels = _session_cast(pixels, np.random.default_rng([seed, _SESSION_STREAM, i, s_idx]))
                    path = tmp / _file_name(layout, i, sessions[s_idx], j // len(sessions), eye)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _save(pixels, path, channels)
                    done += 1
                    if progress:
                        progress(done, total)
        for i in range(subjects if layout == "per-subject" else 0):
            subj = make_subject(subject_rng(seed, i))
            folder = tmp / subject_name(i)
            folder.mkdir()
            for j in range(images_per_subject):
                pixels = render(subj, image_rng(seed, i, j), size)
                _save(pixels, folder / f"{subject_name(i)}_{j:02d}.png", channels)
                done += 1
                if progress:
                    progress(done, total)
        meta = {"format": "toolchain.synth", "generator_version": GENERATOR_VERSION, **asdict(cfg),
                "note": "procedural periocular images; see toolchain/data/synth.py"}
        (tmp / "synth.json").write_text(jsonio.dumps(meta, indent=2) + "\n")
    return Path(out)
