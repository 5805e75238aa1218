"""The export decision per device, asked of the format plugins (moved from tests/test_devices.py with choose())."""

import pytest

from toolchain.artifact.formats import artifact_name, choose, format_names, get_format
from toolchain.devices import get_device
from toolchain.errors import DeviceError
from toolchain.export.coreml.exporter import coreml_format_for


@pytest.mark.parametrize("key,fmt,spec,min_ios", [
    ("iphone6", "neuralnetwork", 3, 12),
    ("iphonex", "mlprogram", 7, 16),
    ("iphonexr", "mlprogram", 9, 18),
    ("ipadair2", "mlprogram", 6, 15),
    ("ipad7", "mlprogram", 9, 18),
])
def test_coreml_choice_per_device(key, fmt, spec, min_ios):
    c = choose("coreml", get_device(key))
    assert (c.coreml_format, c.spec_version, c.min_ios) == (fmt, spec, min_ios)
    assert c.reasons  # the export command prints why


def test_min_ios_override_and_limits():
    assert coreml_format_for(13) == ("neuralnetwork", 4)
    assert choose("coreml", get_device("iphonexr"), min_ios=14).spec_version == 5
    with pytest.raises(DeviceError, match="newer than iPhone 6"):
        choose("coreml", get_device("iphone6"), min_ios=13)
    with pytest.raises(DeviceError):
        coreml_format_for(11)


def test_bad_names_list_the_valid_ones():
    with pytest.raises(DeviceError, match="coreml"):
        choose("caffe", None)
    with pytest.raises(DeviceError, match="fp16"):
        choose("onnx", None, precision="int4")
    with pytest.raises(DeviceError, match="Apple"):
        choose("coreml", get_device("android"))


def test_compressed_or_int8_coreml_targets_ios16():
    assert choose("coreml", None, compress="sparse").min_ios == 16
    assert choose("coreml", None, precision="int8").spec_version == 7
    assert choose("coreml", get_device("iphonexr"), compress="palettize8").min_ios == 18
    with pytest.raises(DeviceError, match="iPad Air 2 cannot run it"):
        choose("coreml", get_device("ipadair2"), compress="sparse")
    with pytest.raises(DeviceError, match="iPhone 6"):
        choose("coreml", get_device("iphone6"), precision="int8")
    with pytest.raises(DeviceError, match="iOS 15 cannot run it"):
        choose("coreml", None, min_ios=15, compress="palettize4")


def test_every_format_plugin_answers_for_itself():
    """No module outside a plugin compares format names: the facts come from the plugins."""
    assert format_names() == ["coreml", "onnx", "tflite"]
    app = {n: get_format(n).app_platform for n in format_names()}
    assert app == {"coreml": "ios", "onnx": None, "tflite": "android"}
    assert [n for n in format_names() if get_format(n).weight_compression] == ["coreml"]
    iphone6, android = get_device("iphone6"), get_device("android")
    assert [n for n in format_names() if get_format(n).serves(iphone6, many=True)] == ["coreml", "onnx"]
    assert [n for n in format_names() if get_format(n).serves(android, many=True)] == ["onnx", "tflite"]


def test_artifact_names_are_the_plugins_parts():
    assert artifact_name("b", choose("coreml", get_device("iphone6")), None) == "b_coreml_fp16_ios12"
    assert artifact_name("b", choose("tflite", None, precision="int8"), None, "dynamic") == "b_tflite_int8_nhwc_dynamic"
    assert artifact_name("b", choose("onnx", None), None) == "b_onnx_fp32"
    assert artifact_name("b", choose("onnx", None, layout="nhwc"), None) == "b_onnx_fp32_nhwc"
    assert artifact_name("b", choose("coreml", None, compress="sparse"), "sparse") == "b_coreml_fp16_ios16_sparse"
