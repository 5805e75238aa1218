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
