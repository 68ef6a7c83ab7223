import numpy as np
import pytest

from calwebb import dqflags


def test_bits_are_distinct_powers_of_two():
    values = [v for k, v in dqflags.PIXEL.items() if k != "GOOD"]
    assert len(values) == 32
    assert sorted(values) == [1 << i for i in range(32)]


def test_named_values_match_spec():
    assert dqflags.DO_NOT_USE == 1
    assert dqflags.JUMP_DET == 4
    assert dqflags.NON_SCIENCE == 512
    assert dqflags.NO_SAT_CHECK == 2097152
    assert dqflags.REFERENCE_PIXEL == 2147483648


def test_group_flags_fit_in_a_byte_and_exclude_outlier():
    assert all(v < 256 for v in dqflags.GROUP.values())
    assert "OUTLIER" not in dqflags.GROUP
    assert dqflags.GROUP["CHARGELOSS"] == 128


def test_flag_names_round_trip():
    value = dqflags.combine("DO_NOT_USE", "SATURATED", "REFERENCE_PIXEL")
    assert value == 1 + 2 + 2**31
    assert dqflags.flag_names(value) == ["DO_NOT_USE", "SATURATED", "REFERENCE_PIXEL"]
    assert dqflags.flag_names(0) == ["GOOD"]


@pytest.mark.parametrize(
    "expression, expected",
    [
        (None, None),
        (6, 6),
        ("4+8", 12),
        ("4,8", 12),
        ("JUMP_DET,DROPOUT", 12),
        ("~DO_NOT_USE+NON_SCIENCE", 0xFFFFFFFF & ~513),
        ("~(1+512)", 0xFFFFFFFF & ~513),
    ],
)
def test_interpret_bit_flags(expression, expected):
    assert dqflags.interpret_bit_flags(expression) == expected


def test_unknown_flag_name_is_a_clear_error():
    with pytest.raises(ValueError, match="NOT_A_FLAG"):
        dqflags.interpret_bit_flags("NOT_A_FLAG")


def test_unusable_groups_need_do_not_use_on_every_pixel_of_the_plane():
    groupdq = np.zeros((2, 4, 3, 5), np.uint8)
    groupdq[0, 1] = dqflags.DO_NOT_USE | dqflags.SATURATED
    groupdq[1, 3] = dqflags.DO_NOT_USE
    groupdq[1, 2] = dqflags.DO_NOT_USE
    groupdq[1, 2, 2, 4] = dqflags.SATURATED  # one pixel usable: the group is usable
    groupdq[0, 2] = dqflags.JUMP_DET  # flagged everywhere, but not DO_NOT_USE
    expected = [[False, True, False, False], [False, False, False, True]]
    np.testing.assert_array_equal(dqflags.unusable_groups(groupdq), expected)
    # a band of rows (a strided view) gives the band's answer
    np.testing.assert_array_equal(dqflags.unusable_groups(groupdq[..., 2:, :]),
                                  [[False, True, False, False], [False, False, False, True]])
    np.testing.assert_array_equal(dqflags.unusable_groups(groupdq[..., :2, :]),
                                  [[False, True, False, False], [False, False, True, True]])


def test_invalid_pixels_are_flagged_or_not_finite_in_any_array():
    dq = np.zeros((2, 3), np.uint32)
    dq[0, 0] = dqflags.DO_NOT_USE
    dq[0, 1] = dqflags.NON_SCIENCE
    dq[0, 2] = dqflags.JUMP_DET  # not among the flags asked for
    data = np.ones((2, 3), np.float32)
    data[1, 0] = np.nan
    err = np.ones((2, 3), np.float32)
    err[1, 2] = np.inf
    flags = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE
    expected = [[True, True, False], [True, False, True]]
    np.testing.assert_array_equal(dqflags.invalid_pixels(dq, flags, data, None, err),
                                  expected)
    np.testing.assert_array_equal(dqflags.invalid_pixels(None, flags, data, err),
                                  [[False, False, False], [True, False, True]])
    np.testing.assert_array_equal(dqflags.invalid_pixels(dq, dqflags.DO_NOT_USE),
                                  [[True, False, False], [False, False, False]])


def test_group_to_pixel_ors_over_groups():
    groupdq = np.zeros((2, 3, 2, 2), np.uint8)
    groupdq[0, 1, 0, 0] = dqflags.JUMP_DET
    groupdq[0, 2, 0, 0] = dqflags.SATURATED
    pixel = dqflags.group_to_pixel(groupdq)
    assert pixel.dtype == np.uint32
    assert pixel.shape == (2, 2, 2)
    assert pixel[0, 0, 0] == 6 and pixel[1].sum() == 0
