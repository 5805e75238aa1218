"""What each cell of ``benchmarks/architectures.py`` measures besides its parity: the evaluation path again, and
the same weights with no converter at all (PyTorch fp16, float64, int8, and fp32 under input noise), so a failing
cell says whether the converter or the weights lost the accuracy.

Imported by ``architectures.py`` (run it, not this); every function takes a bundle folder and runs in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_again(folder: Path) -> dict:
    """The artifact through the evaluation path, on the fixed input; cosine against the manifest's reference."""
    import numpy as np
    from PIL import Image

    from toolchain.artifact import manifest as man
    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.evaluate.features import load_artifact_model

    m = man.read(folder).to_json()
    ref = np.asarray(m["reference_features"]["sample"], np.float32)
    png = folder / m["reference_features"]["input"]
    pixels = np.asarray(Image.open(png).convert("RGB"), np.float32).transpose(2, 0, 1)[None]
    # a cell whose parity failed at export is "failed", not an evaluation error: evaluate it anyway (the flag
    # `deploy evaluate --allow-parity-failed` sets) so the cell still says what the evaluation path computes
    model = load_artifact_model(folder, allow_parity_failed=m["parity"]["status"] == "failed")
    got = model.extract(pixels)[0][: len(ref)]
    cos = float(cosine_per_sample(got[None], ref[None])[0])
    return {"evaluate_runtime": model.runtime, "evaluate_cosine16": round(cos, 6)}


def torch_fp16_cosine(bundle_dir: Path) -> float:
    """PyTorch's own fp16 against its fp32 on the parity images: how well these weights survive fp16 at all.

    Random-init deep nets can be ill-conditioned (EfficientNet-B0 here: ~0.85), so an fp16 artifact of them
    fails parity whatever the converter does; that is why the matrix checks Core ML at fp32.
    """
    import copy

    import torch

    from toolchain.artifact.inputs import smooth_random_images
    from toolchain.models.bundle import load_bundle

    b = load_bundle(bundle_dir)
    m = b.model.eval()
    x = torch.from_numpy(smooth_random_images(4, b.input_size, 1234)) / 255
    x = (x - torch.tensor(b.mean).view(1, 3, 1, 1)) / torch.tensor(b.std).view(1, 3, 1, 1)
    with torch.no_grad():
        y = m(x)
        yh = copy.deepcopy(m).half()(x.half()).float()
    return round(float(torch.nn.functional.cosine_similarity(y, yh).min()), 6)


def _deploy_module(bundle_dir: Path, layout: str = "nchw") -> tuple[Any, int]:
    """The bundle as every artifact computes it (raw pixels -> features, in eval mode) and its input size."""
    from toolchain.artifact.module import DeployModule
    from toolchain.models.bundle import load_bundle

    b = load_bundle(bundle_dir)
    return DeployModule(b.model, b.mean, b.std, layout).eval(), b.input_size


def input_noise_cosine(bundle_dir: Path, px: float = 1.0) -> float:
    """The fp32 model against itself on the parity images plus seeded uniform noise of ±``px`` pixels.

    How far these weights amplify a small input change: any int8 model adds a rounding error of that order
    at every layer, so a model that already drops below the int8 threshold here cannot pass int8 parity.
    """
    import numpy as np
    import torch

    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.artifact.inputs import parity_inputs

    m, size = _deploy_module(bundle_dir)
    x = parity_inputs(size)
    noise = np.random.default_rng(0).uniform(-px, px, x.shape).astype(np.float32)
    with torch.no_grad():
        y, yn = m(torch.from_numpy(x)).numpy(), m(torch.from_numpy(x + noise)).numpy()
    return round(float(cosine_per_sample(yn, y).min()), 6)


def torch_fp64_cosine(bundle_dir: Path) -> float:
    """PyTorch in float64 against PyTorch in float32 on the parity images: how much float32 rounding alone,
    with no converter and no other runtime, changes these weights' features (fp32 parity asks 0.99999)."""
    import copy

    import torch

    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.artifact.inputs import parity_inputs

    m, size = _deploy_module(bundle_dir)
    x = torch.from_numpy(parity_inputs(size))
    with torch.no_grad():
        y, y64 = m(x).numpy(), copy.deepcopy(m).double()(x.double()).numpy()
    return round(float(cosine_per_sample(y, y64).min()), 8)


def int8_diagnosis(bundle_dir: Path, folder: Path) -> dict:
    """Where an int8 artifact's loss comes from, on the parity images: PyTorch's own int8 model (the same
    PT2E quantisation and calibration images the export used, :func:`toolchain.export.tflite.quantize_int8`)
    against fp32, and the artifact against that int8 model. When PyTorch's int8 model misses the threshold
    too, the loss is there before any converter runs. (LiteRT's integer kernels round differently from
    PyTorch's simulation, so on weights that amplify rounding the artifact need not be close to it either.)"""
    import numpy as np
    import torch

    from toolchain.artifact import manifest as man
    from toolchain.artifact.compare import cosine_per_sample
    from toolchain.artifact.inputs import calibration_images, parity_inputs
    from toolchain.evaluate.features import load_artifact_model
    from toolchain.export.tflite import quantize_int8

    layout = man.read(folder).to_json()["input"]["layout"]
    module, size = _deploy_module(bundle_dir, layout)
    graph, _ = quantize_int8(module, calibration_images(size), layout)
    x = parity_inputs(size)
    xl = x if layout == "nchw" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    with torch.no_grad():
        fp32 = module(torch.from_numpy(xl)).numpy()
        q = np.concatenate([graph(torch.from_numpy(xl[i:i + 1])).numpy() for i in range(len(xl))])
    art = load_artifact_model(folder, allow_parity_failed=True).extract(x)
    return {"int8_torch_cosine": round(float(cosine_per_sample(q, fp32).min()), 6),
            "int8_converter_cosine": round(float(cosine_per_sample(art[:, :fp32.shape[1]], q).min()), 6)}
