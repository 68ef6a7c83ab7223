"""The metadata tree: attribute access, unset leaves, typos, type coercion, flattening."""

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.datamodels import keywords
from calwebb.datamodels.tree import Node, flatten, get_path, set_path
from calwebb.errors import DataModelError


def test_attribute_access_reads_back_what_was_set():
    model = datamodels.ImageModel()
    model.meta.exposure.ngroups = 10
    model.meta.instrument.name = "NIRCAM"
    model.meta.cal_step.jump = "COMPLETE"
    assert model.meta.exposure.ngroups == 10
    assert model.meta.instrument.name == "NIRCAM"
    assert model.meta.cal_step.jump == "COMPLETE"
    assert model.tree["meta"]["exposure"]["ngroups"] == 10


def test_unset_known_leaf_reads_none_and_group_reads_empty_node():
    model = datamodels.RampModel()
    assert model.meta.exposure.ngroups is None
    assert model.meta.ref_file.gain.name is None
    group = model.meta.subarray
    assert isinstance(group, Node)
    assert list(group) == []
    # reading does not create anything
    assert "subarray" not in model.tree["meta"]


def test_unknown_name_raises_attribute_error():
    model = datamodels.ImageModel()
    with pytest.raises(AttributeError, match="meta.exposure.ngroupz"):
        model.meta.exposure.ngroupz  # noqa: B018
    with pytest.raises(AttributeError):
        model.meta.no_such_group.value  # noqa: B018
    # an unknown name becomes readable once set explicitly
    model.meta.custom_item = 3
    assert model.meta.custom_item == 3


def test_unknown_model_attribute_raises():
    model = datamodels.ImageModel()
    with pytest.raises(AttributeError):
        model.no_such_array  # noqa: B018
    with pytest.raises(AttributeError):
        model.ngroups = 3


def test_numpy_scalars_become_python_scalars():
    model = datamodels.ImageModel()
    model.meta.exposure.ngroups = np.int64(7)
    model.meta.exposure.frame_time = np.float32(10.5)
    model.meta.exposure.zero_frame = np.bool_(True)
    assert type(model.meta.exposure.ngroups) is int and model.meta.exposure.ngroups == 7
    assert type(model.meta.exposure.frame_time) is float
    assert model.meta.exposure.frame_time == 10.5
    assert model.meta.exposure.zero_frame is True


def test_coercion_of_strings_and_integral_floats():
    model = datamodels.ImageModel()
    model.meta.exposure.nints = 3.0
    model.meta.exposure.group_time = "2.5"
    model.meta.exposure.zero_frame = "T"
    model.meta.observation.program_number = 1234
    assert model.meta.exposure.nints == 3 and type(model.meta.exposure.nints) is int
    assert model.meta.exposure.group_time == 2.5
    assert model.meta.exposure.zero_frame is True
    assert model.meta.observation.program_number == "1234"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("exposure.ngroups", "many"),
        ("exposure.ngroups", 2.5),
        ("exposure.frame_time", "fast"),
        ("exposure.frame_time", True),
        ("exposure.zero_frame", "maybe"),
        ("instrument.name", [1, 2]),
    ],
)
def test_bad_value_raises_naming_the_path(path, value):
    model = datamodels.ImageModel()
    group, leaf = path.split(".")
    with pytest.raises(DataModelError, match=f"meta.{group}.{leaf}"):
        setattr(getattr(model.meta, group), leaf, value)


def test_setting_none_removes_the_item():
    model = datamodels.ImageModel()
    model.meta.exposure.ngroups = 4
    model.meta.exposure.ngroups = None
    assert model.meta.exposure.ngroups is None
    assert "ngroups" not in model.meta.exposure
    model.meta.exposure.nints = 2
    del model.meta.exposure.nints
    assert model.meta.exposure.nints is None


def test_to_flat_dict():
    model = datamodels.ImageModel()
    model.meta.exposure.ngroups = 10
    model.meta.instrument.detector = "NRCA1"
    model.meta.wcs_note = {"a": 1}
    flat = model.to_flat_dict()
    assert flat["meta.exposure.ngroups"] == 10
    assert flat["meta.instrument.detector"] == "NRCA1"
    assert flat["meta.wcs_note.a"] == 1
    assert flat["meta.model_type"] == "ImageModel"
    assert all(not isinstance(value, dict) or not value for value in flat.values())


def test_node_update_merges_recursively_and_coerces():
    model = datamodels.ImageModel()
    model.meta.exposure.nints = 1
    model.meta.update({"exposure": {"ngroups": np.int16(5), "readpatt": "RAPID"},
                       "instrument": {"name": "MIRI"}})
    assert model.meta.exposure.nints == 1  # kept: update merges
    assert model.meta.exposure.ngroups == 5 and type(model.meta.exposure.ngroups) is int
    assert model.meta.exposure.readpatt == "RAPID"
    assert model.meta.instrument.name == "MIRI"
    with pytest.raises(DataModelError, match="meta.exposure.ngroups"):
        model.meta.update({"exposure": {"ngroups": "x"}})


def test_node_equality_and_to_dict_is_a_copy():
    model = datamodels.ImageModel()
    model.meta.subarray.update({"name": "FULL", "xstart": 1})
    as_dict = model.meta.subarray.to_dict()
    assert model.meta.subarray == {"name": "FULL", "xstart": 1}
    as_dict["name"] = "SUB64"
    assert model.meta.subarray.name == "FULL"
    assert "name" in model.meta.subarray


def test_assigning_a_node_copies_it():
    first = datamodels.ImageModel()
    first.meta.subarray.update({"name": "SUB64", "xsize": 64})
    second = datamodels.ImageModel()
    second.meta.subarray = first.meta.subarray
    first.meta.subarray.xsize = 32
    assert second.meta.subarray.xsize == 64


def test_flatten_set_path_get_path():
    tree = {}
    set_path(tree, "meta.exposure.ngroups", np.int32(3))
    assert tree == {"meta": {"exposure": {"ngroups": 3}}}
    assert get_path(tree, "meta.exposure.ngroups") == 3
    assert get_path(tree, "meta.exposure.nints") is None
    assert get_path(tree, "meta.exposure.ngroups.x") is None
    assert flatten(tree) == {"meta.exposure.ngroups": 3}


def test_keyword_table_is_consistent():
    table = keywords.table()
    assert table["meta.instrument.detector"].keyword == "DETECTOR"
    assert table["meta.instrument.detector"].hdu == "PRIMARY"
    assert table["meta.photometry.conversion_megajanskys"].hdu == "SCI"
    assert table["meta.wcs"].hdu is None
    assert keywords.is_group("meta.exposure") and keywords.is_leaf("meta.exposure.ngroups")
    # one keyword per HDU at most
    seen = {}
    for entry in table.values():
        if entry.keyword:
            key = (entry.hdu, entry.keyword)
            assert key not in seen, f"{entry.path} and {seen[key]} share {key}"
            seen[key] = entry.path
    assert {entry.type for entry in table.values()} <= {"str", "int", "float", "bool", "any"}
