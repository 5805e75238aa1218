"""Defaults of data preparation, one home each: ``deploy data synth`` / ``deploy data split``, the pipeline's
``[data]`` section and the library functions all read these dataclasses' fields (imports nothing heavy, so the
CLI can show them in ``--help``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Verification protocols ``deploy data split --protocol`` knows (see ``toolchain.data.protocols``).
PROTOCOL_NAMES = ("all-pairs", "cross-session")
#: What a pair of one subject's two different eyes (or an eye and an unknown side) counts as.
OTHER_EYE_RULES = ("exclude", "impostor", "genuine")
#: Whether cross-session pairs must share the capture condition (the session minus its last part).
CONDITION_RULES = ("same", "any")
#: Synthetic layouts ``deploy data synth --layout`` writes.
SYNTH_LAYOUTS = ("per-subject", "ufpr", "visob")


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic periocular data set: subjects, images per subject, image side (pixels), seed, layout.

    ``layout``: ``per-subject`` (one eye per subject, no sessions), or ``ufpr`` / ``visob``: both eyes of every
    subject over sessions, named like the licensed data sets (``images_per_subject`` is then per eye).
    """

    subjects: int = 100
    images_per_subject: int = 12
    size: int = 224
    seed: int = 0
    layout: str = "per-subject"
    channels: int = 3  # 1: NIR-like grayscale images (what iris cameras give), saved as 8-bit gray PNGs

    def __post_init__(self) -> None:  # the CLI, the pipeline's [data] and the library all pass through here
        from toolchain import bounds as b
        from toolchain.errors import ConfigError

        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ConfigError(f"synthetic channels is {self.channels!r}; allowed: 1 (NIR-like gray) or 3 (RGB)")

        b.check_int(self.subjects, "synthetic subjects", *b.SUBJECTS)
        b.check_int(self.images_per_subject, "synthetic images per subject", *b.IMAGES_PER_SUBJECT)
        b.check_int(self.size, "synthetic image size", *b.IMAGE_SIZE_PX)
        b.check_int(self.seed, "seed", *b.SEED)


@dataclass(frozen=True)
class SplitConfig:
    """Subject-disjoint splits and verification protocols.

    ``fractions``: train/val/test shares of subjects; ``max_impostors``: the most impostor pairs a protocol
    keeps (all of them when there are fewer, else a seeded uniform sample).

    ``protocol``: ``all-pairs`` (every pair of the split's images) or ``cross-session`` (enrolment images
    from ``enrol_sessions`` against verification images from ``verify_sessions``; empty: the layout's
    published default, see ``docs/datasets.md``). ``other_eye``: a pair of one subject's left and right eye
    is left out (``exclude``), an ``impostor``, or ``genuine`` (either-eye genuines). ``condition``:
    cross-session pairs only within the same capture condition (``same``: VISOB's phone and lighting) or
    across them (``any``). ``check_images``: decode every image first and leave unreadable ones out.
    ``closed_set``: hold out this many images of every training identity for closed-set accuracy (0: none).
    """

    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    max_impostors: int = 200_000
    seed: int = 0
    protocol: str = "all-pairs"
    enrol_sessions: tuple[str, ...] = ()
    verify_sessions: tuple[str, ...] = ()
    other_eye: str = "exclude"
    condition: str = "same"
    check_images: bool = True
    #: images held out of every training identity for closed-set accuracy (0: none; toolchain.data.closed_set)
    closed_set: int = 0

    def __post_init__(self) -> None:
        from toolchain import bounds as b

        if not isinstance(self.fractions, (tuple, list)) or len(self.fractions) != 3:
            raise ConfigError(f"fractions is {self.fractions!r}; allowed: three numbers train,val,test"[:200])
        for name, f in zip(("train", "val", "test"), self.fractions):
            b.check_float(f, f"{name} fraction", *b.RATIO)
        b.check_int(self.max_impostors, "max impostors", *b.MAX_IMPOSTORS)
        b.check_int(self.seed, "seed", *b.SEED)
        b.check_int(self.closed_set, "closed-set images per identity", 0, b.IMAGES_PER_SUBJECT[1])
