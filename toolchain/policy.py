"""Numeric policy, one home for each number: parity thresholds, seeds, sample lengths, the Core ML spec table.

Export parity (``export/base.py``), the Apple-runtime check (a second runtime of the same parity run), the
report's on-device numerics check (``report/checks.py``), the host runner and the run plans all read these, so
an artifact is judged by the same rule wherever it is judged.

>>> min_cosine("fp16"), min_cosine("fp16", "sparse"), min_cosine("fp16", "palettize8")
(0.999, 0.999, 0.99)
"""

from __future__ import annotations

#: Minimum per-sample cosine similarity with PyTorch, by precision.
MIN_COSINE_BY_PRECISION: dict[str, float] = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99}
#: Lossy weight compression (k-means palettes of any width) is judged like int8; sparse storage of exact zeros
#: is lossless and keeps the precision's threshold. 8-bit palettes measured cos 0.9986 on MobileNetV2
#: (benchmarks/export.py).
LOSSY_COMPRESSION_MIN_COSINE: dict[str, float] = {
    f"{kind}{bits}": 0.99 for kind in ("palettize", "sparse-palettize") for bits in (4, 6, 8)}


def min_cosine(precision: str, compress: str | None = None) -> float:
    """The parity threshold of an artifact: the lower of its precision's and its weight compression's.

    Args:
        precision: ``fp32``, ``fp16`` or ``int8`` (unknown: fp32's, the strictest).
        compress: the Core ML weight compression (``sparse``, ``palettize4``...) or None.
    """
    return min(MIN_COSINE_BY_PRECISION.get(precision, MIN_COSINE_BY_PRECISION["fp32"]),
               LOSSY_COMPRESSION_MIN_COSINE.get(compress or "", 1.0))


#: Parity runs the artifact and PyTorch on this many seeded smooth random images ...
PARITY_SAMPLES = 4
#: ... drawn with this seed. The *fixed input* (``fixed_input.png``, whose PyTorch features the manifest keeps)
#: is a one-image draw with the same seed, so a host run of a bundle with this seed sees the same pixels and the
#: report can check its features against the manifest's.
FIXED_INPUT_SEED = 1234
#: With --calibration or --data, parity runs on up to this many of the user's images (held out from calibration).
USER_PARITY_SAMPLES = 8
#: The report flags a run with fewer timed iterations than this (``deploy report --min-iterations``).
MIN_TIMED_ITERATIONS = 30
#: int8 calibration / Core ML palettization images when no ``--calibration`` folder is given.
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 99
#: Features kept of the fixed input: the manifest's ``reference_features.sample`` and a result's
#: ``feature_sample`` (results schema v1) hold the first this-many values.
FEATURE_SAMPLE_LEN = 16
#: Unreadable image files tolerated in a data set (a fraction 0..1; they are dropped): ``--max-bad-fraction``.
MAX_BAD_FRACTION = 0.01

#: Core ML specification version introduced by each iOS major version.
COREML_SPEC_FOR_IOS: dict[int, int] = {12: 3, 13: 4, 14: 5, 15: 6, 16: 7, 17: 8, 18: 9}
#: coremltools 9 targets iOS 13..18; iOS 12 (spec 3) is reached by lowering a spec-4 NeuralNetwork.
MIN_IOS, MAX_IOS = min(COREML_SPEC_FOR_IOS), max(COREML_SPEC_FOR_IOS)
#: Compressed (sparse, palettized) and int8 weights are constexpr ops: ML Program spec 7 (iOS 16).
COMPRESSED_WEIGHTS_IOS = 16
#: Joint compression (sparse + palette in one constexpr_lut_to_sparse op) is an iOS 18 op set (spec 9).
JOINT_COMPRESSION_IOS = 18
