"""Data set layouts: find every image of a data set folder and the subject (session, eye) it belongs to.

A layout turns a folder into a :class:`Dataset`, a list of :class:`Sample` s. Each layout
is registered by name in :data:`LAYOUTS`; :func:`detect_layout` guesses one, :func:`scan`
reads a folder with one. The layouts and their assumptions (``docs/datasets.md``):

* ``per-subject``: ``ROOT/<subject>/**/*.png|jpg|...``; the first folder is the subject.
* ``ufpr``: UFPR-Periocular, ``ROOT/<subject>/C<subject>_S<session>_I<image>_<L|R>.<ext>``.
* ``visob``: VISOB, ``ROOT/<phone>/<lighting>/<visit>/.../<subject>_..._<L|R>_....<ext>``;
  the subject is the leading number of the file name, the session is ``phone/lighting/visit``.
* ``csv``: an index file ``path,subject[,session,eye]`` (paths relative to ROOT).

Where a data set names files differently, ``subject_regex`` (a Python regex searched in the
path relative to ROOT, with a named group ``subject`` and optional ``session`` and ``eye``)
replaces the layout's own, or a CSV index lists every file.

>>> Sample(Path("a/b.png"), "a", None, "L").identity
'a/L'
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from toolchain.bounds import MAX_CSV_FIELD_CHARS, REGEX_TIMEOUT_S
from toolchain.errors import DataLayoutError
from toolchain.registry import Registry

#: File name suffixes (lower case) taken as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Name of the CSV index that makes ``detect_layout`` choose the ``csv`` layout.
INDEX_CSV = "index.csv"


@dataclass(frozen=True)
class Sample:
    """One image: its path, the subject it shows, and (when known) session and eye side ``L``/``R``."""

    path: Path
    subject: str
    session: str | None = None
    eye: str | None = None

    @property
    def identity(self) -> str:
        """The class of an ocular image: the subject's eye (``subject/L``), or the subject when the side is unknown.

        Left and right eyes of one person are different classes (different patterns), but a
        split always keeps both on the same side because splits go by subject.
        """
        return f"{self.subject}/{self.eye}" if self.eye else self.subject


@dataclass
class Dataset:
    """The images of one data set folder, read with one layout."""

    root: Path
    layout: str
    samples: list[Sample]
    #: image files the layout could not name a subject for (relative paths)
    unmatched: list[str] = field(default_factory=list)

    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.samples})

    def identities(self) -> list[str]:
        return sorted({s.identity for s in self.samples})

    def sessions(self) -> list[str]:
        return sorted({s.session for s in self.samples if s.session is not None})

    def eyes(self) -> list[str]:
        return sorted({s.eye for s in self.samples if s.eye is not None})

    def images_per_subject(self) -> Counter:
        return Counter(s.subject for s in self.samples)

    def select(self, subjects: Iterable[str]) -> list[Sample]:
        """Samples of the given subjects, in data set order."""
        keep = set(subjects)
        return [s for s in self.samples if s.subject in keep]

    def relative(self, sample: Sample) -> str:
        """``sample.path`` relative to the root, as a POSIX string (how protocol files store it)."""
        try:
            return sample.path.relative_to(self.root).as_posix()
        except ValueError:
            return sample.path.as_posix()


@dataclass(frozen=True)
class Layout:
    """How one kind of data set folder names its subjects."""

    name: str
    description: str  # the expected structure, shown in errors
    example: str  # one relative path that follows it
    regex: str | None  # searched in the path relative to ROOT; None: the layout reads an index instead
    #: a normalisation of parsed fields (e.g. eye side "left" -> "L")
    post: Callable[[dict[str, str | None]], dict[str, str | None]] = lambda d: d
    #: the data set's published cross-session protocol: (enrolment visits, verification visits), matched against
    #: the last ``/`` part of each session (``toolchain.data.protocols``); None: the layout has no such default
    cross_session: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    #: where ``cross_session`` comes from (shown in protocol files and reports; details in docs/datasets.md)
    protocol_source: str | None = None


def _eye_side(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("l", "left", "os"):
        return "L"
    if v in ("r", "right", "od"):
        return "R"
    return value


def _norm_eye(d: dict[str, str | None]) -> dict[str, str | None]:
    return {**d, "eye": _eye_side(d.get("eye"))}


_EYE_TOKEN = re.compile(r"(?i)[_\-.](L|R|left|right)(?=[_\-.])")


def _visob_post(d: dict[str, str | None]) -> dict[str, str | None]:
    # the eye side is a token of the file name (1023_1_L_03.jpg, 77_right.png), when there is one
    m = _EYE_TOKEN.search(d.get("fname") or "")
    d = _norm_eye({**d, "eye": m.group(1) if m else None})
    parts = [d.get(k) for k in ("phone", "light", "visit") if d.get(k)]
    return {"subject": d["subject"], "eye": d["eye"], "session": "/".join(parts) or None}


#: The known layouts, by name.
LAYOUTS: Registry[Layout] = Registry("data set layout")
LAYOUTS.add("per-subject", Layout(
    "per-subject", "ROOT/<subject>/<any name>.<image>, one folder per subject (sub-folders allowed)",
    "subject_001/img_01.png", r"^(?P<subject>[^/]+)/"))
LAYOUTS.add("ufpr", Layout(
    "ufpr", "UFPR-Periocular: ROOT/<subject>/C<subject>_S<session>_I<image>_<L|R>.<image> (e.g. C12_S2_I3_L.jpg)",
    "C12/C12_S2_I3_L.jpg",
    r"(?:^|/)C(?P<subject>\d+)_S(?P<session>\d+)_I\d+_(?P<eye>[LR])\.[A-Za-z]+$", _norm_eye,
    cross_session=(("1",), ("2", "3")),
    protocol_source="UFPR-Periocular (Zanlorensi et al., Scientific Reports 2022): 3 sessions; this toolchain's "
                    "cross-session reading: enrolment session 1, verification sessions 2 and 3 (docs/datasets.md)"))
LAYOUTS.add("visob", Layout(
    "visob", "VISOB: ROOT/<phone>/<lighting>/<visit>/.../<subject number>_..._<L|R>....<image> "
             "(phone iPhone|Samsung|Note4|Oppo, lighting Office|Dim|Daylight, visit Visit1|Visit2)",
    "iPhone/Office/Visit1/1023_1_L_03.jpg",
    r"(?i)(?:^|/)(?P<phone>iphone|samsung|note ?4|oppo)[^/]*/(?:.*/)?(?P<light>office|dim(?:[ _]?light)?|day[ _]?light)[^/]*/"
    r"(?:.*/)?(?P<visit>(?:visit|session)[ _]?\d+)[^/]*/(?:.*/)?(?P<fname>(?P<subject>\d+)(?:[_\-.][^/]*)?)$",
    _visob_post, cross_session=(("1",), ("2",)),
    protocol_source="VISOB (Rattani et al., ICIP 2016 competition on mobile ocular biometric recognition): "
                    "enrolment Visit 1, verification Visit 2, same phone and lighting (docs/datasets.md)"))
LAYOUTS.add("csv", Layout(
    "csv", f"an index CSV (ROOT/{INDEX_CSV} or --index) with a header path,subject[,session,eye]; "
           "paths relative to ROOT", "path,subject,session,eye", None))


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (hidden files and folders skipped), sorted by relative path."""
    from toolchain.fsutil import walk_files

    out = [p for p in walk_files(root, skip_hidden=True) if is_image_file(p)]  # iterative: any depth
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"data folder {root} does not exist or is not a folder")
    return root


def _match_all(root: Path, images: list[Path], pattern: Any, post) -> tuple[list[Sample], list[str]]:
    user = not isinstance(pattern, re.Pattern)  # a --subject-regex: the `regex` engine, time-limited per path
    samples, unmatched = [], []
    for p in images:
        rel = p.relative_to(root).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # os.fsdecode's surrogates: a name that cannot be written to JSON or CSV
            raise DataLayoutError(f"{root}: {rel.encode('utf-8', 'surrogateescape')!r} is not a UTF-8 file or "
                                  "folder name; rename it (e.g. convmv -f latin1 -t utf-8)") from None
        try:
            m = pattern.search(rel, timeout=REGEX_TIMEOUT_S) if user else pattern.search(rel)
        except TimeoutError:
            raise DataLayoutError(f"subject regex {pattern.pattern!r} took over {REGEX_TIMEOUT_S} s on {rel!r} "
                                  "(catastrophic backtracking, e.g. nested repeats like (a+)+); simplify it") from None
        if m is None or not m.groupdict().get("subject"):
            unmatched.append(rel)
            continue
        d = post({k: v for k, v in m.groupdict().items()})
        samples.append(Sample(p, str(d["subject"]), d.get("session"), d.get("eye")))
    return samples, unmatched


def _compile(pattern_text: str) -> Any:
    """A user's regex, compiled by the ``regex`` package (same syntax as ``re`` for these patterns) so each
    search can be given a time limit: a catastrophically backtracking pattern is refused, not left to hang."""
    import regex

    try:
        pattern = regex.compile(pattern_text)
    except (regex.error, ValueError, OverflowError) as e:
        raise DataLayoutError(f"subject regex {pattern_text!r} is not a valid regular expression: {e}") from None
    if "subject" not in pattern.groupindex:
        raise DataLayoutError(f"subject regex {pattern_text!r} needs a named group (?P<subject>...) "
                              "(optional groups: session, eye)")
    return pattern


def _read_index(root: Path, index_csv: Path) -> list[Sample]:
    if not index_csv.is_file():
        raise DataLayoutError(f"the csv layout expects an index file {index_csv} "
                              f"({LAYOUTS.get('csv').description})")
    samples = []
    raw = index_csv.read_bytes()
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # Excel's "CSV UTF-8": not part of the first column's name
    try:  # decoded whole (not streamed) so an error can name the byte of the file, not of a read buffer
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        pos = bom + e.start
        line = raw.count(b"\n", 0, pos) + 1
        raise DataLayoutError(f"{index_csv} is not UTF-8 text: byte {pos} (line {line}, 0x{raw[pos]:02x}) "
                              "cannot be decoded; save the index as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    first_line: dict[str, int] = {}
    dupes: Counter = Counter()
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            cols = [c.strip() for c in (reader.fieldnames or [])]
            if "path" not in cols or "subject" not in cols:
                raise DataLayoutError(f"{index_csv} must start with a header naming columns "
                                      f"path,subject[,session,eye]; found {cols[:8] or 'no header'}"[:300])
            for n, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and k}
                if not row.get("path") or not row.get("subject"):
                    raise DataLayoutError(f"{index_csv} line {n}: empty path or subject")
                if max(map(len, row.values())) > MAX_CSV_FIELD_CHARS:
                    raise DataLayoutError(f"{index_csv} line {n}: a field of {max(map(len, row.values()))} "
                                          f"characters; allowed: at most {MAX_CSV_FIELD_CHARS}")
                p = Path(row["path"])
                p = p if p.is_absolute() else root / p
                key = os.path.normpath(p)
                if key in first_line:  # the same image twice: pairs of an image with itself, quadratic blow-up
                    dupes[key] += 1
                    continue
                first_line[key] = n
                samples.append(Sample(p, row["subject"], row.get("session") or None, _eye_side(row.get("eye") or None)))
        except csv.Error as e:  # a field over csv's own limit (131072 chars), NUL bytes, a broken quote
            raise DataLayoutError(f"{index_csv} line {reader.line_num + 1}: not a readable CSV row ({e})") from None
    if dupes:
        key, times = dupes.most_common(1)[0]
        raise DataLayoutError(f"{index_csv} lists {len(dupes)} image(s) more than once, e.g. {key} {times + 1} "
                              f"times (first on line {first_line[key]}); list each image once")
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise DataLayoutError(f"{index_csv} lists {len(missing)} file(s) that do not exist, e.g. {missing[0]}; "
                              "paths are relative to the data folder")
    return samples


def detect_layout(root: str | Path) -> str:
    """Guess a folder's layout: ``csv`` if it has ``index.csv``; else ``ufpr`` or ``visob`` when
    (nearly) every image matches their naming; else ``per-subject`` when images sit in subfolders.

    Raises :class:`DataLayoutError` when none fits (e.g. images loose in ROOT).
    """
    root = _check_root(root)
    if (root / INDEX_CSV).is_file():
        return "csv"
    images = list_images(root)
    if not images:
        raise DataLayoutError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    for name in ("ufpr", "visob"):
        layout = LAYOUTS.get(name)
        samples, _ = _match_all(root, images, re.compile(layout.regex), layout.post)
        if len(samples) >= 0.95 * len(images):
            return name
    loose = [p for p in images if p.parent == root]
    if len(loose) < len(images):
        return "per-subject"
    raise DataLayoutError(
        f"{root} has {len(loose)} images but no subject folders, so no layout fits. Put each subject's images in "
        f"its own folder ({LAYOUTS.get('per-subject').description}), or pass --subject-regex with a "
        f"(?P<subject>...) group, or write {root / INDEX_CSV} with columns path,subject[,session,eye]")


def scan(root: str | Path, layout: str | None = None, subject_regex: str | None = None,
         index_csv: str | Path | None = None, min_match_fraction: float = 0.5) -> Dataset:
    """Read a data set folder into a :class:`Dataset`.

    Args:
        root: the data set folder.
        layout: a name in :data:`LAYOUTS`, or ``None`` to detect it (``csv`` when ``index_csv`` is given).
        subject_regex: replaces the layout's own regex (named group ``subject``; ``session``, ``eye`` optional).
        index_csv: a CSV index for the ``csv`` layout (default ``ROOT/index.csv``).
        min_match_fraction: fewer image files than this fraction named by the layout is an error
            that names the layout expected (the folder is probably in another layout).

    Files a layout cannot name are listed in ``Dataset.unmatched``, not silently used.
    """
    root = _check_root(root)
    if layout is None:
        layout = "csv" if index_csv is not None else ("per-subject" if subject_regex else detect_layout(root))
    spec = LAYOUTS.get(layout)
    if spec.regex is None:  # csv
        samples = _read_index(root, Path(index_csv) if index_csv else root / INDEX_CSV)
        if not samples:
            raise DataLayoutError(f"the index of {root} lists no images")
        return Dataset(root, layout, samples)
    images = list_images(root)
    if not images:
        raise DataLayoutError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    regex = subject_regex or spec.regex
    pattern = _compile(regex)
    samples, unmatched = _match_all(root, images, pattern, spec.post if not subject_regex else _norm_eye)
    if len(samples) < min_match_fraction * len(images):
        try:
            guess = detect_layout(root)
        except DataLayoutError:
            guess = None
        hint = f"; it looks like the {guess!r} layout (--layout {guess})" if guess and guess != layout else ""
        raise DataLayoutError(
            f"{root} does not follow the {layout!r} layout: only {len(samples)} of {len(images)} image files match "
            f"(e.g. {unmatched[0]!r}). Expected {spec.description}, like {spec.example!r}{hint}. "
            "Otherwise pass --subject-regex with a (?P<subject>...) group, or a CSV index (path,subject[,session,eye])")
    return Dataset(root, layout, samples, unmatched)
