"""Derive a cluster serve config from ``serve_config.yaml`` by overrides (one serve config).

``serve_config.yaml`` stays the single description of the application. A cluster differs
only in a few keys (the Redis state store, the S3 blob store, replica counts), kept in small
override files merged over it:

* ``cluster/overrides.yaml`` — any multi-node cluster (embedded in ``cluster/rayservice.yaml``
  by ``cluster/sync.py``);
* ``cluster/local.yaml`` — on top of it, the two-node cluster of ``cluster/local.sh`` on one
  machine (loopback Redis, the local S3 server, replicas pinned to both nodes).

Merge rules: mappings merge key by key, anything else (lists, scalars) is replaced, and
``applications`` in an override is a mapping from application name to the override of that
application. ``python cluster/derive.py cluster/overrides.yaml cluster/local.yaml -o out.yaml``
writes the result; ``--set args.state_url=redis://…`` adds one more override per flag.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve_config.yaml"
CLUSTER_OVERRIDES = ROOT / "cluster" / "overrides.yaml"
LOCAL_OVERRIDES = ROOT / "cluster" / "local.yaml"


def merge(base: Any, override: Any) -> Any:
    """``override`` merged over ``base`` (mappings recursively; everything else replaced)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def apply(config: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """One override applied to a serve config (``applications`` matched by name)."""
    override = dict(override or {})
    apps = override.pop("applications", None) or {}
    if not isinstance(apps, dict):
        raise ValueError("an override's applications must map an application name to its override")
    out = merge(config, override)
    by_name = {app["name"]: i for i, app in enumerate(out.get("applications", []))}
    unknown = sorted(set(apps) - set(by_name))
    if unknown:
        raise ValueError(f"override for unknown applications {unknown}; known: {sorted(by_name)}")
    out["applications"] = [copy.deepcopy(a) for a in out.get("applications", [])]
    for name, app_override in apps.items():
        out["applications"][by_name[name]] = merge(out["applications"][by_name[name]], app_override)
    return out


def derive(*overrides: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``serve_config.yaml`` (or ``base``) with every override applied in order."""
    config = base if base is not None else yaml.safe_load(SERVE_CONFIG.read_text())
    for override in overrides:
        config = apply(config, override)
    return config


def load(path: Path | str) -> dict[str, Any]:
    return dict(yaml.safe_load(Path(path).read_text()) or {})


def cluster_config() -> dict[str, Any]:
    """The serve config of a multi-node cluster (what the RayService embeds)."""
    return derive(load(CLUSTER_OVERRIDES))


def dotted(assignment: str, app: str = "percept") -> dict[str, Any]:
    """``args.state_url=redis://x`` → an override of application ``app`` (YAML-typed value)."""
    path, _, raw = assignment.partition("=")
    if not path or not _:
        raise ValueError(f"--set wants key.path=value, not {assignment!r}")
    value: Any = yaml.safe_load(raw)
    for part in reversed(path.split(".")):
        value = {part: value}
    return {"applications": {app: value}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", type=Path, help="override files, applied in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override of the application's keys, e.g. args.state_url=redis://h:6379/0")
    parser.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    opts = parser.parse_args(argv)
    config = derive(*(load(p) for p in opts.overrides), *(dotted(s) for s in opts.set))
    text = "# Derived from serve_config.yaml by cluster/derive.py: edit those, not this.\n"
    text += yaml.safe_dump(config, sort_keys=False, width=100)
    if opts.output:
        opts.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
