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
    assert get_spec("default").name == "pixelcnnpp-adaptive"
    assert get_spec("default").family == "autoregressive"
    assert get_spec("idf").family == "flow"
    assert get_spec("vae-fmnist").family == "bitsback"
