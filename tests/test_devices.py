import pytest

from toolchain.devices import CATALOG, choose, coreml_format_for, get_device, parse_devices
from toolchain.errors import DeviceError


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
    with pytest.raises(DeviceError, match="iphone6"):
        get_device("iphone5s")
    with pytest.raises(DeviceError, match="coreml"):
        choose("caffe", None)
    with pytest.raises(DeviceError, match="fp16"):
        choose("onnx", None, precision="int4")
    with pytest.raises(DeviceError, match="Apple"):
        choose("coreml", get_device("android"))


def test_parse_devices_all_and_commas():
    assert [d.key for d in parse_devices(["all"])] == list(CATALOG)
    assert [d.key for d in parse_devices(["iphone6,iphonex", "iphone6"])] == ["iphone6", "iphonex"]
