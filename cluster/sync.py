"""Keep cluster/rayservice.yaml's embedded serve config derived from serve_config.yaml.

The RayService embeds ``serve_config.yaml`` with ``cluster/overrides.yaml`` merged over it
(``cluster/derive.py``: Redis state, S3 blobs, two ingress replicas at least), never a copy
edited by hand. ``python cluster/sync.py`` rewrites the ``serveConfigV2`` block; ``--check``
exits 1 when it differs (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import derive  # noqa: E402 - the sibling script

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve_config.yaml"
RAYSERVICE = ROOT / "cluster" / "rayservice.yaml"


class _Literal(str):
    """A string dumped as a YAML literal block (readable in the manifest)."""


class _Dumper(yaml.SafeDumper):
    """Literal blocks for the embedded config; no anchors (every value written out)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    _Literal, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
)


def embedded_config(manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(yaml.safe_load(manifest["spec"]["serveConfigV2"]))


def in_sync() -> bool:
    manifest = yaml.safe_load(RAYSERVICE.read_text())
    return embedded_config(manifest) == derive.cluster_config()


def write() -> None:
    manifest = yaml.safe_load(RAYSERVICE.read_text())
    text = ("# serve_config.yaml with cluster/overrides.yaml merged over it (python cluster/sync.py)\n"
            + yaml.safe_dump(derive.cluster_config(), sort_keys=False, width=100))
    manifest["spec"]["serveConfigV2"] = _Literal(text)
    RAYSERVICE.write_text(yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=100))


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
