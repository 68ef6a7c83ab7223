"""Associations (``asn.json``): load, validate and create Level 2 and Level 3 associations."""

from calwebb.associations.association import (
    Association,
    Member,
    Product,
    load_association,
)
from calwebb.associations.create import asn_from_list, level3_product_name

__all__ = [
    "Association",
    "Member",
    "Product",
    "asn_from_list",
    "level3_product_name",
    "load_association",
]
