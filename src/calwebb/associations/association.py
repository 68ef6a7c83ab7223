"""The association file format: products with members, each member an exposure and its role."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from calwebb.errors import AssociationError

#: Member roles (``exptype``) the pipelines understand (associations.md §1.3).
MEMBER_ROLES = (
    "science",
    "background",
    "imprint",
    "selfcal",
    "sourcecat",
    "segmap",
    "direct_image",
    "target_acquisition",
    "psf",
    "dark",
    "flat",
    "engineering",
    "autoflat",
    "autowave",
    "tracking",
)

#: Top-level keys written by default, in the official order, with their default values.
DEFAULT_HEADER = {
    "asn_type": "None",
    "asn_rule": "DMS_Level3_Base",
    "version_id": None,
    "code_version": "calwebb",
    "degraded_status": "No known degraded exposures in association.",
    "program": "noprogram",
    "constraints": "No constraints",
    "asn_id": "a3001",
    "target": "none",
    "asn_pool": "none",
}


@dataclass
class Member:
    """One exposure of a product: its file and its role."""

    expname: str
    exptype: str = "science"
    extra: dict = field(default_factory=dict)

    def path(self, asn_dir: str | os.PathLike) -> Path:
        """The member's file, resolved against the association's directory."""
        return Path(asn_dir) / self.expname

    def to_dict(self) -> dict:
        return {"expname": self.expname, "exptype": self.exptype, **self.extra}


@dataclass
class Product:
    """One output product: a name (the root of its file names) and its members."""

    name: str | None
    members: list[Member]

    def members_of(self, *roles: str) -> list[Member]:
        """Members whose role is one of ``roles`` (case-insensitive)."""
        wanted = {role.lower() for role in roles}
        return [m for m in self.members if m.exptype.lower() in wanted]

    def to_dict(self) -> dict:
        out = {} if self.name is None else {"name": self.name}
        out["members"] = [m.to_dict() for m in self.members]
        return out


@dataclass
class Association:
    """A whole association: header keys, products, and where it was read from."""

    products: list[Product]
    header: dict = field(default_factory=lambda: dict(DEFAULT_HEADER))
    asn_dir: Path = field(default_factory=Path.cwd)
    table_name: str | None = None

    @property
    def asn_type(self) -> str | None:
        return self.header.get("asn_type")

    @property
    def pool_name(self) -> str | None:
        return self.header.get("asn_pool")

    def to_dict(self) -> dict:
        return {**self.header, "products": [p.to_dict() for p in self.products]}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=4)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the association as JSON atomically; returns the path written."""
        path = Path(path)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(self.dumps() + "\n")
        os.replace(temporary, path)
        return path

    def member_paths(self, *roles: str, product: int = 0) -> list[Path]:
        """Paths of one product's members with the given roles, resolved against ``asn_dir``."""
        return [m.path(self.asn_dir) for m in self.products[product].members_of(*roles)]


def _parse_member(raw, where: str) -> Member:
    if not isinstance(raw, dict):
        raise AssociationError(f"{where}: a member must be an object, got {type(raw).__name__}")
    for key in ("expname", "exptype"):
        if key not in raw:
            raise AssociationError(f"{where}: member is missing the required key '{key}'")
        if not isinstance(raw[key], str):
            raise AssociationError(f"{where}: member key '{key}' must be a string")
    extra = {k: v for k, v in raw.items() if k not in ("expname", "exptype")}
    return Member(raw["expname"], raw["exptype"], extra)


def _parse_product(raw, where: str) -> Product:
    if not isinstance(raw, dict):
        raise AssociationError(f"{where}: a product must be an object")
    if "members" not in raw:
        raise AssociationError(f"{where}: product is missing the required key 'members'")
    if not isinstance(raw["members"], list):
        raise AssociationError(f"{where}: product key 'members' must be a list")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise AssociationError(f"{where}: product key 'name' must be a string")
    members = [
        _parse_member(m, f"{where}.members[{i}]") for i, m in enumerate(raw["members"])
    ]
    return Product(name, members)


def association_from_dict(raw: dict, asn_dir=None, source: str = "association") -> Association:
    """Validate a parsed association and build the in-memory form (unknown keys are kept)."""
    if not isinstance(raw, dict):
        raise AssociationError(f"{source}: the association must be a JSON object")
    if "products" not in raw:
        raise AssociationError(f"{source}: missing the required key 'products'")
    if not isinstance(raw["products"], list):
        raise AssociationError(f"{source}: key 'products' must be a list")
    products = [
        _parse_product(p, f"{source}: products[{i}]") for i, p in enumerate(raw["products"])
    ]
    header = {k: v for k, v in raw.items() if k != "products"}
    return Association(products, header, Path(asn_dir or Path.cwd()))


def load_association(path: str | os.PathLike) -> Association:
    """Read and validate an ``asn.json`` file; member paths resolve against its directory."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise AssociationError(f"{path}: an association must be a .json file")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AssociationError(f"{path}: association file not found") from None
    except json.JSONDecodeError as error:
        raise AssociationError(f"{path}: not valid JSON ({error})") from None
    association = association_from_dict(raw, path.resolve().parent, str(path))
    association.table_name = path.name
    return association
