"""Associations: write one from a list of files (asn_from_list), or check one."""

from __future__ import annotations

import argparse
from pathlib import Path

from calwebb.associations import asn_from_list, load_association
from calwebb.errors import AssociationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "from-list", help="write an association holding the given files",
        description="Write an association from a list of files, as the official "
                    "asn_from_list: Level 3 (one product of all files, named by "
                    "--product-name) or Level 2 (one product per file).")
    create.add_argument("files", nargs="+", help="member files (e.g. *_cal.fits)")
    create.add_argument("-o", "--output", help="association file to write (default: "
                        "<product-name>_asn.json for Level 3, level2_asn.json for Level 2)")
    create.add_argument("--product-name", help="the Level 3 product's name (required for "
                        "DMS_Level3_Base)")
    create.add_argument("-r", "--rule", default="DMS_Level3_Base",
                        choices=("DMS_Level3_Base", "DMSLevel2bBase"),
                        help="association rule (default: %(default)s)")
    create.add_argument("-i", "--acid", default="o999",
                        help="candidate id of a Level 2 association (default: %(default)s)")
    check = actions.add_parser("check", help="validate association files and list products",
                               description="Validate association files (every key of the "
                                           "official format) and list their products.")
    check.add_argument("files", nargs="+", help="asn.json files")


def run(args: argparse.Namespace) -> int:
    if args.action == "from-list":
        return _from_list(args)
    for path in args.files:
        association = load_association(path)
        print(f"{path}: {association.asn_type} ({association.header.get('asn_rule')}), "
              f"{len(association.products)} product(s)")
        for product in association.products:
            roles = sorted({member.exptype for member in product.members})
            print(f"  {product.name}: {len(product.members)} member(s) ({', '.join(roles)})")
    return 0


def _from_list(args: argparse.Namespace) -> int:
    association = asn_from_list(args.files, rule=args.rule, product_name=args.product_name,
                                acid=args.acid)
    if args.output:
        output = Path(args.output)
    elif args.rule == "DMS_Level3_Base":
        output = Path(f"{args.product_name}_asn.json")
    else:
        output = Path("level2_asn.json")
    if output.suffix.lower() != ".json":
        raise AssociationError(f"{output}: association files are JSON; name it *_asn.json")
    association.save(output)
    print(f"wrote {output}: {len(association.products)} product(s), "
          f"{sum(len(p.members) for p in association.products)} member(s)")
    return 0
