"""The papers' networks as cards: MobileNetV1 (our implementation: width multiplier, shallow variant) and VGG16
(torchvision's trunk, fc7 feature), each through every export target with parity."""

from __future__ import annotations

import pytest
import torch

from toolchain.models.mobilenet_v1 import SHALLOW_REMOVED, MobileNetV1

#: Howard et al. 2017, Section 4.2 (ImageNet, 1000 classes): parameters in millions, to the paper's rounding
PAPER_PARAMS_M = {(1.0, False): 4.2, (0.75, False): 2.6, (0.5, False): 1.3, (1.0, True): 2.9}


@pytest.mark.parametrize("width,shallow", list(PAPER_PARAMS_M))
def test_mobilenet_v1_has_the_papers_parameter_counts(width, shallow):
    with torch.device("meta"):
        n = sum(p.numel() for p in MobileNetV1(width, shallow).parameters())
    assert round(n / 1e6, 1) == PAPER_PARAMS_M[(width, shallow)]


def test_shallow_removes_the_five_14x14x512_blocks():
    full = MobileNetV1().eval()
    seen = {}
    for k, block in enumerate(full.blocks):
        block.register_forward_hook(lambda m, i, o, k=k: seen.update({k: (tuple(i[0].shape[1:]), tuple(o.shape[1:]))}))
    with torch.no_grad():
        full(torch.zeros(1, 3, 224, 224))
    assert [k for k, shape in seen.items() if shape == ((512, 14, 14), (512, 14, 14))] == [6, 7, 8, 9, 10]
    assert list(SHALLOW_REMOVED) == [6, 7, 8, 9, 10]
    shallow = MobileNetV1(shallow=True)
    assert all(isinstance(shallow.blocks[k], torch.nn.Identity) for k in SHALLOW_REMOVED)
    # every other tensor keeps its name and shape: shallow == full with those blocks depth-pruned
    kept = {k: v.shape for k, v in full.state_dict().items()
            if not any(k.startswith(f"blocks.{b}.") for b in SHALLOW_REMOVED)}
    assert {k: v.shape for k, v in shallow.state_dict().items()} == kept


def test_cards_build_with_their_feature_heads():
    from toolchain.models.bundle import card_architecture
    from toolchain.models.cards import load_card

    for name, dim, width in (("mobilenet_v1", 1024, 1.0), ("mobilenet_v1_075", 768, 0.75),
                             ("mobilenet_v1_050", 512, 0.5), ("mobilenet_v1_shallow", 1024, 1.0)):
        card = load_card(name)
        assert card.feature_dim == dim and card.architecture["kwargs"]["width_mult"] == width
        assert card_architecture(card)["head"] == {"kind": "drop", "module": "fc"}
    vgg = load_card("vgg16")
    assert vgg.feature_dim == 4096 and card_architecture(vgg)["head"] == {"kind": "drop", "module": "classifier.6"}


TARGETS = {  # every export target: ONNX, Core ML spec 3 (iPhone 6) and ML Program (fp16 and fp32), TFLite
    "onnx": dict(target="onnx"),
    "coreml_spec3_iphone6": dict(target="coreml", devices=["iphone6"]),
    "coreml_mlprogram_fp16_iphonexr": dict(target="coreml", devices=["iphonexr"]),
    "coreml_mlprogram_fp32_ipadair2": dict(target="coreml", devices=["ipadair2"], precision="fp32"),
    "tflite_fp32": dict(target="tflite", precision="fp32"),
}
#: small inputs keep conversion and parity quick; VGG16's 138M parameters do not shrink with the input
SIZES = {"mobilenet_v1": 64, "mobilenet_v1_shallow": 64, "vgg16": 64}
#: VGG16 for iOS 12 at 224 px: at 64 px its adaptive 7x7 pool upsamples a 2x2 map, which coremltools lowers to a
#: concat along the width that spec 3 cannot express (UnsupportedLayerError, seen here); at 224 the pool is 7 -> 7.
#: Measured here: parity passed at 224 (cosine 0.9999997, numpy executor), 650 s on a loaded 2-core machine.
SIZE_FOR = {("vgg16", "coreml_spec3_iphone6"): 224}


@pytest.fixture(scope="module")
def paper_bundle(tmp_path_factory):
    from toolchain.models.bundle import init_bundle

    root, made = tmp_path_factory.mktemp("paper_cards"), {}

    def get(card: str, size: int):
        if (card, size) not in made:
            made[card, size] = init_bundle(card, root / f"{card}_{size}", seed=0, input_size=size)
        return made[card, size]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("card", list(SIZES))
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_target_exports_with_parity(paper_bundle, card, target, tmp_path):
    from toolchain.export.base import ExportRequest, export_bundle

    bundle = paper_bundle(card, SIZE_FOR.get((card, target), SIZES[card]))
    (o,) = export_bundle(ExportRequest(bundle_dir=bundle, out=tmp_path, **TARGETS[target]))
    runs = o.manifest.parity_by_runtime
    ran = {r: p for r, p in runs.items() if p.status != "skipped"}
    assert ran, f"no runtime checked parity: {runs}"
    assert all(p.status == "passed" for p in ran.values()), runs
