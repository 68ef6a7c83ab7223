"""Creating associations from lists of files, and the official product-naming rules."""

from __future__ import annotations

import os
from pathlib import Path

from calwebb.associations.association import (
    DEFAULT_HEADER,
    MEMBER_ROLES,
    Association,
    Member,
    Product,
)
from calwebb.errors import AssociationError
from calwebb.suffixes import split_suffix

#: Values of FILTER/PUPIL/GRATING that mean "no element" and are left out of product names.
EMPTY_ELEMENTS = {"", "N/A", "NULL", "NONE", "--", "F", "FALSE"}


def level2_product_name(expname: str) -> str:
    """Level 2 product name: the member file name without extension and one known suffix.

    The directory part is kept, as the official ``asn_from_list`` does.
    """
    path = Path(expname)
    root, _, _ = split_suffix(path.name.split(".")[0])
    return str(path.with_name(root)) if path.parent != Path(".") else root


def level3_product_name(
    program: str,
    acid: str,
    target_id: int | str | None,
    instrument: str,
    filters=(),
    pupils=(),
    subarray: str | None = None,
    slit: str | None = None,
) -> str:
    """The DMS Level 3 product name ``jw{program}-{acid}_{target}_{instrument}_{opt_elem}...``.

    ``filters`` and ``pupils`` are the distinct values over the members; values meaning
    "no element" are dropped and ``clear`` is used when nothing is left.
    """
    groups = []
    for values in (filters, pupils):
        kept = sorted({v.lower() for v in values if v and v.upper() not in EMPTY_ELEMENTS})
        if kept:
            groups.append("-".join(kept))
    opt_elem = "-".join(sorted(groups)) or "clear"
    target = f"t{int(target_id):03d}" if target_id not in (None, "", "none") else "t000"
    name = f"jw{program}-{acid}_{target}_{instrument.lower()}_{opt_elem}"
    if slit:
        name += f"-{slit.lower()}"
    if subarray and subarray.upper() != "FULL":
        name += f"-{subarray.lower()}"
    return name


def _member(item, with_exptype: bool) -> Member:
    if with_exptype:
        expname, exptype = item
        exptype = exptype or "science"
    else:
        expname, exptype = item, "science"
    expname = os.fspath(expname)
    if exptype.lower() not in MEMBER_ROLES:
        raise AssociationError(
            f"member {expname}: unknown exptype {exptype!r}; "
            f"expected one of {', '.join(MEMBER_ROLES)}"
        )
    return Member(expname, exptype.lower())


def asn_from_list(
    items,
    rule: str = "DMS_Level3_Base",
    product_name: str | None = None,
    with_exptype: bool = False,
    acid: str = "o999",
    meta: dict | None = None,
) -> Association:
    """Build an association from file names, as the official ``asn_from_list`` does.

    Level 3 (``DMS_Level3_Base``): one product named ``product_name`` (required) holding all
    items. Level 2 (``DMSLevel2bBase``): one product per item, named after the item.
    ``with_exptype`` takes ``(expname, exptype)`` pairs.
    """
    members = [_member(item, with_exptype) for item in items]
    if not members:
        raise AssociationError("asn_from_list: no files given")
    header = dict(DEFAULT_HEADER, asn_rule=rule)
    if rule == "DMS_Level3_Base":
        if not product_name:
            raise AssociationError("asn_from_list: a Level 3 association needs a product name")
        products = [Product(product_name, members)]
    elif rule == "DMSLevel2bBase":
        if not (acid.startswith("o") or acid.startswith("c")):
            raise AssociationError(f"asn_from_list: acid {acid!r} must start with 'o' or 'c'")
        header["asn_id"] = acid
        products = [Product(level2_product_name(m.expname), [m]) for m in members]
    else:
        raise AssociationError(
            f"asn_from_list: unknown rule {rule!r}; expected DMS_Level3_Base or DMSLevel2bBase"
        )
    header.update(meta or {})
    return Association(products, header)
