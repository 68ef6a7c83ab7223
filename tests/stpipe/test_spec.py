"""Parsing parameter specs and converting values to their declared types."""

import pytest

from calwebb.errors import ParameterError
from calwebb.stpipe.spec import parse_spec

SPEC = """
    threshold = float(default=4.0, min=0)  # sigma # with a hash in the comment
    count = integer(default=3, min=1, max=10)
    name = string(default=None)
    flag = boolean(default=False)
    mode = option('none', 'quarter', 'half', 'all', default='none')  # cores to use
    items = list(default=list())
    sizes = int_list(min=1, max=3, default=None)
    factors = float_list(default=None)
    quoted = string(default='a # not a comment')
"""


def test_parse_types_defaults_and_comments():
    params = parse_spec(SPEC)
    assert list(params) == ["threshold", "count", "name", "flag", "mode", "items", "sizes",
                            "factors", "quoted"]
    assert params["threshold"].default == 4.0 and params["threshold"].minimum == 0
    assert params["threshold"].description == "sigma # with a hash in the comment"
    assert params["count"].maximum == 10
    assert params["mode"].options == ("none", "quarter", "half", "all")
    assert params["mode"].description == "cores to use"
    assert params["items"].default == []
    assert params["quoted"].default == "a # not a comment"


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("threshold", "5", 5.0),
        ("threshold", 2, 2.0),
        ("count", "7", 7),
        ("count", 7.0, 7),
        ("flag", "true", True),
        ("flag", "No", False),
        ("flag", 1, True),
        ("mode", "half", "half"),
        ("items", "a, b", ["a", "b"]),
        ("sizes", "1,2", [1, 2]),
        ("factors", [1, "2.5"], [1.0, 2.5]),
        ("name", None, None),
    ],
)
def test_convert(name, given, expected):
    assert parse_spec(SPEC)[name].convert(given) == expected


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("threshold", "-1", "below the minimum"),
        ("threshold", "abc", "not a valid float"),
        ("count", "11", "above the maximum"),
        ("count", 2.5, "not a whole number"),
        ("flag", "maybe", "true or false"),
        ("mode", "most", "one of"),
        ("sizes", "1,2,3,4", "above the maximum"),
        ("count", True, "boolean"),
    ],
)
def test_bad_values_name_the_parameter(name, given, message):
    with pytest.raises(ParameterError, match=message) as info:
        parse_spec(SPEC)[name].convert(given, "jump.")
    assert f"jump.{name}" in str(info.value)


def test_input_file_paths_resolve_against_base_dir(tmp_path):
    (tmp_path / "ref.fits").write_text("x")
    param = parse_spec("ref = input_file(default=None)")["ref"]
    assert param.convert("ref.fits", base_dir=tmp_path) == str(tmp_path / "ref.fits")
    with pytest.raises(ParameterError, match="does not exist"):
        param.convert("missing.fits", base_dir=tmp_path)


@pytest.mark.parametrize("line", ["x = nosuchtype(default=1)", "= float()", "x = float(default="])
def test_bad_spec_lines(line):
    with pytest.raises(ParameterError):
        parse_spec(line, "Toy")
