"""The codec registry: names are keys, never paths; families come from the architecture registry."""

from __future__ import annotations

import pytest

from nlc.errors import CodecError
from nlc.registry import get_spec


@pytest.mark.parametrize("name", ["../pyproject", "../../../../etc/evil", "archive/pixelcnnpp-62e29f1c957c",
                                  "/etc/passwd", ".hidden", "PixelCNNPP", "a" * 65, "", "pixelcnnpp\x00"])
def test_a_codec_name_that_is_not_a_plain_name_is_refused_before_any_file_is_read(name):
    with pytest.raises(CodecError, match="unknown codec"):
        get_spec(name)


def test_registered_names_and_the_default_alias_resolve():
    assert get_spec("pixelcnnpp-exact").name == "pixelcnnpp-exact"
    assert get_spec("default").name == "pixelcnnpp-adaptive-v4"
    assert get_spec("default").context == 8
    assert get_spec("default").family == "autoregressive"
    assert get_spec("idf").family == "flow"
    assert get_spec("vae-fmnist").family == "bitsback"


@pytest.mark.parametrize("size, tile, v4_tile", [((512, 768), 128, 128), ((768, 512), 128, 128),
                                                ((1024, 1024), 128, 128), ((1224, 1632), 64, 128),
                                                ((256, 256), 64, 64), ((400, 500), 64, 64), ((1300, 1700), 64, 128),
                                                ((3000, 4000), 64, 128), ((1, 30000), 64, 128), ((1, 2944), 64, 64)])
def test_v3_takes_its_large_tile_for_images_of_24_to_96_of_them_and_v4_for_24_or_more(size, tile, v4_tile):
    import nlc

    for name, expected in (("pixelcnnpp-adaptive-v3", tile), ("default", v4_tile)):
        codec = nlc.Codec.load(name)
        assert codec.coding(None, None, size) == ("range", expected)
        assert codec.coding("ans", 32, size) == ("ans", 32)  # what the user asks for wins
        assert codec.coding(None, None) == ("range", 64)  # sets: the codec's tile


@pytest.mark.parametrize("size, tile", [((80, 96), 96), ((96, 80), 96), ((65, 3), 65), ((128, 128), 128),
                                        ((72, 128), 128), ((64, 64), 64), ((40, 50), 64), ((129, 100), 64),
                                        ((100, 129), 64), ((1, 200), 64)])
def test_the_default_codec_codes_an_image_of_65_to_128_on_its_longer_side_as_one_tile(size, tile):
    import nlc

    codec = nlc.Codec.load("default")
    assert codec.coding(None, None, size) == ("range", tile)
    assert codec.coding(None, 64, size) == ("range", 64)


def test_a_small_image_in_one_tile_round_trips_and_records_its_tile():
    import nlc
    from nlc import api
    from tests.conftest import gradient_image, same_pixels

    im = gradient_image(70, 90)
    data, stats = api.encode_image(im, "default", fallback=False)
    assert (api.read_header(data).tile, stats["tile"]) == (90, 90)
    assert same_pixels(nlc.api.decode_image(data)[0], im)


def test_groups_of_large_tiles_hold_no_more_pixels_than_384_tiles_of_64():
    from nlc.coding.autoregressive import GROUP, group_for

    assert (group_for(16), group_for(64), group_for(128), group_for(256), group_for(4096)) == (GROUP, GROUP, 96, 24, 1)
    assert all(group_for(t) * t * t <= GROUP * 64 * 64 for t in (65, 96, 100, 128, 200, 1000))


def test_a_file_in_large_tiles_round_trips_and_records_its_tile_and_group():
    import nlc
    from nlc import api
    from tests.conftest import gradient_image, same_pixels

    im = gradient_image(20, 131)  # two tiles of 128 across, the second 3 wide
    data, stats = api.encode_image(im, "default", tile=128, fallback=False)
    header = api.read_header(data)
    assert (header.tile, header.group, stats["tile"]) == (128, 96, 128)
    assert same_pixels(nlc.api.decode_image(data)[0], im)


def test_the_registry_knows_which_families_code_sets_only():
    from nlc.families import FAMILIES
    from nlc.registry import FAMILIES as NAMES
    from nlc.registry import SET_FAMILIES

    assert set(FAMILIES) == set(NAMES)
    assert {f.name for f in FAMILIES.values() if f.set_only} == set(SET_FAMILIES)
