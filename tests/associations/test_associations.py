import json

import pytest

from calwebb import suffixes
from calwebb.associations import asn_from_list, level3_product_name, load_association
from calwebb.errors import AssociationError


@pytest.fixture(autouse=True)
def product_suffixes_only(monkeypatch):
    """Naming tests need only the product suffixes plus a couple of step names."""
    names = frozenset(suffixes.PRODUCT_SUFFIXES) | {"jump", "jumpstep"}
    monkeypatch.setattr(suffixes, "known_suffixes", lambda: names)


def write(tmp_path, content, name="test_asn.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_load_resolves_members_against_the_association_directory(tmp_path):
    raw = {
        "asn_type": "image3",
        "asn_pool": "jw01234_pool",
        "unknown_key": 1,
        "products": [
            {
                "name": "mosaic",
                "members": [
                    {"expname": "a_cal.fits", "exptype": "science", "group_id": "g1"},
                    {"expname": "b_cal.fits", "exptype": "background"},
                ],
            }
        ],
    }
    asn = load_association(write(tmp_path, raw))
    assert asn.asn_type == "image3" and asn.pool_name == "jw01234_pool"
    assert asn.table_name == "test_asn.json"
    assert asn.member_paths("science") == [tmp_path / "a_cal.fits"]
    assert asn.products[0].members[0].extra == {"group_id": "g1"}
    assert asn.to_dict()["unknown_key"] == 1


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "'products'"),
        ({"products": {}}, "'products' must be a list"),
        ({"products": [{}]}, r"products\[0\].*'members'"),
        ({"products": [{"members": [{"exptype": "science"}]}]}, "'expname'"),
        ({"products": [{"members": [{"expname": "a.fits"}]}]}, "'exptype'"),
        ({"products": [{"members": [{"expname": 3, "exptype": "science"}]}]}, "string"),
    ],
)
def test_malformed_associations_name_the_key(tmp_path, raw, message):
    with pytest.raises(AssociationError, match=message):
        load_association(write(tmp_path, raw))


def test_not_json_and_wrong_extension(tmp_path):
    with pytest.raises(AssociationError, match="not valid JSON"):
        load_association(write(tmp_path, "{not json"))
    with pytest.raises(AssociationError, match=r"\.json"):
        load_association(write(tmp_path, "{}", name="x_asn.yaml"))
    with pytest.raises(AssociationError, match="not found"):
        load_association(tmp_path / "missing_asn.json")


def test_level3_from_list_round_trips(tmp_path):
    asn = asn_from_list(["a_cal.fits", "b_cal.fits"], product_name="mymosaic")
    assert asn.header["asn_id"] == "a3001" and asn.header["asn_rule"] == "DMS_Level3_Base"
    path = asn.save(tmp_path / "my_asn.json")
    again = load_association(path)
    assert again.products[0].name == "mymosaic"
    assert [m.expname for m in again.products[0].members] == ["a_cal.fits", "b_cal.fits"]
    assert again.header["version_id"] is None


def test_level3_needs_a_product_name():
    with pytest.raises(AssociationError, match="product name"):
        asn_from_list(["a_cal.fits"])


def test_level2_from_list_names_products_after_members():
    asn = asn_from_list(
        [("jw01_nrca1_rate.fits", "science"), ("bg_nrca1_rate.fits", "")],
        rule="DMSLevel2bBase",
        with_exptype=True,
        acid="o001",
    )
    assert [p.name for p in asn.products] == ["jw01_nrca1", "bg_nrca1"]
    assert asn.products[1].members[0].exptype == "science"
    assert asn.header["asn_id"] == "o001"


def test_unknown_role_is_rejected():
    with pytest.raises(AssociationError, match="exptype"):
        asn_from_list([("a.fits", "sky")], with_exptype=True, product_name="x")


def test_dms_level3_product_name_examples():
    assert (
        level3_product_name("01234", "o001", 1, "NIRCAM", ["F200W"], ["CLEAR"])
        == "jw01234-o001_t001_nircam_clear-f200w"
    )
    assert (
        level3_product_name("01234", "o002", 3, "NIRCAM", ["F182M"], ["MASK210R"], "SUB320A210R")
        == "jw01234-o002_t003_nircam_f182m-mask210r-sub320a210r"
    )
    assert level3_product_name("01234", "o001", 1, "MIRI", [], []) == "jw01234-o001_t001_miri_clear"


def test_split_suffix_strips_one_known_suffix():
    assert suffixes.split_suffix("foo_bar_rate") == ("foo_bar", "rate", "_")
    assert suffixes.split_suffix("foo_bar") == ("foo_bar", None, "")
    assert suffixes.split_suffix("x_jump_rate") == ("x_jump", "rate", "_")
    assert suffixes.split_suffix("x-jumpstep") == ("x", "jumpstep", "-")
