"""Keep cluster/rayservice.yaml's embedded serve config identical to serve_config.yaml.

``python cluster/sync.py`` rewrites the ``serveConfigV2`` block; ``--check`` exits 1 when the
two differ (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve_config.yaml"
RAYSERVICE = ROOT / "cluster" / "rayservice.yaml"


class _Literal(str):
    """A string dumped as a YAML literal block (readable in the manifest)."""


yaml.SafeDumper.add_representer(
    _Literal, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
)


def embedded_config(manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(yaml.safe_load(manifest["spec"]["serveConfigV2"]))


def in_sync() -> bool:
    manifest = yaml.safe_load(RAYSERVICE.read_text())
    return embedded_config(manifest) == yaml.safe_load(SERVE_CONFIG.read_text())


def write() -> None:
    manifest = yaml.safe_load(RAYSERVICE.read_text())
    manifest["spec"]["serveConfigV2"] = _Literal(SERVE_CONFIG.read_text())
    RAYSERVICE.write_text(yaml.safe_dump(manifest, sort_keys=False, width=100))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        ok = in_sync()
        sys.stderr.write("in sync\n" if ok else "cluster/rayservice.yaml differs from serve_config.yaml\n")
        return 0 if ok else 1
    write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
