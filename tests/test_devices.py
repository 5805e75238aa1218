"""The device catalog (the export decision per device moved to tests/export/test_formats.py with choose())."""

import pytest

from toolchain.devices import CATALOG, device_by_identifier, get_device, parse_devices
from toolchain.errors import DeviceError


def test_bad_names_list_the_valid_ones():
    with pytest.raises(DeviceError, match="iphone6"):
        get_device("iphone5s")


def test_parse_devices_all_and_commas():
    assert [d.key for d in parse_devices(["all"])] == list(CATALOG)
    assert [d.key for d in parse_devices(["iphone6,iphonex", "iphone6"])] == ["iphone6", "iphonex"]


def test_identifiers_find_their_device():
    assert device_by_identifier("iPhone11,8").key == "iphonexr" and device_by_identifier("iPhone99,1") is None
