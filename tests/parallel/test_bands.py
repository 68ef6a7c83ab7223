"""Memory sizes and the bands of rows a tiled run is cut into."""

import pytest

from calwebb.errors import ParameterError
from calwebb.parallel import bands


def test_parse_memory():
    assert bands.parse_memory("4GB") == 4 * 10**9
    assert bands.parse_memory("500 mb") == 500 * 10**6
    assert bands.parse_memory("1.5GiB") == 3 * 2**29
    assert bands.parse_memory("2048") == 2048
    for text in ("", "GB", "4 XB", "1e9", "-5MB", "0"):
        with pytest.raises(ParameterError, match="max_memory"):
            bands.parse_memory(text)


def test_tile_height_and_plan():
    # 100 rows of 1000 bytes; 10 000 bytes kept whole; 3 rows of halo on both sides
    assert bands.tile_height(10**6, 1000, 10**4, 3, 100) == 100  # everything fits
    assert bands.tile_height(60_000, 1000, 10**4, 3, 100) == 44  # (60000-10000)/1000 - 2*3
    with pytest.raises(ParameterError, match="too small"):
        bands.tile_height(15_000, 1000, 10**4, 3, 100)  # not even 3 rows + halo
    plan = bands.plan_tiles(100, 44)
    assert [(tile.core_start, tile.core_stop) for tile in plan] == [(0, 33), (33, 67),
                                                                     (67, 100)]
    windowed = plan[1].with_halo(3, 100)
    assert (windowed.start, windowed.stop, windowed.rows) == (30, 70, slice(3, 37))
    assert plan[0].with_halo(3, 100).start == 0 and plan[2].with_halo(3, 100).stop == 100
