"""``percept``: the operators' command line (API clients and inspection licenses).

    percept clients create NAME            -> prints "<client_id> <secret>" (the secret is shown once)
    percept clients list
    percept clients delete CLIENT_ID
    percept license issue CLIENT_ID -o FILE [--days N]

It opens the same stores as the service: the ``args`` of the ``percept`` application in
``serve_config.yaml`` (``--config``), or ``--data-dir`` / ``--state-url`` given here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from percept.auth import ClientStore
from percept.config import AppArgs
from percept.inspection.license import issue_license
from percept.storage import open_state_store
from percept.storage.state import StateStore


def _app_args(config: Path) -> dict[str, Any]:
    if not config.exists():
        return {}
    doc = yaml.safe_load(config.read_text()) or {}
    for app in doc.get("applications", []):
        if app.get("name") == "percept" or len(doc.get("applications", [])) == 1:
            return dict(app.get("args") or {})
    return {}


def open_store(ns: argparse.Namespace) -> StateStore:
    """The state store the service uses (same resolution as ``build_app``)."""
    if ns.state_url:
        return open_state_store(ns.state_url)
    raw = _app_args(Path(ns.config))
    keep = {k: raw[k] for k in ("data_dir", "state_url") if k in raw}
    if ns.data_dir:
        keep["data_dir"] = ns.data_dir
        keep.pop("state_url", None)
    args = AppArgs(**keep).resolved(Path.cwd())
    assert args.state_url is not None
    return open_state_store(args.state_url)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="percept", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="serve_config.yaml", help="serve config to read the store settings from")
    p.add_argument("--data-dir", help="the service's data_dir (overrides the config)")
    p.add_argument("--state-url", help="sqlite:///… or redis://… (overrides everything)")
    sub = p.add_subparsers(dest="group", required=True)
    clients = sub.add_parser("clients", help="API clients of the inspection service")
    csub = clients.add_subparsers(dest="action", required=True)
    create = csub.add_parser("create", help="create a client; prints '<client_id> <secret>'")
    create.add_argument("name")
    csub.add_parser("list", help="list clients (JSON lines, no secrets)")
    delete = csub.add_parser("delete", help="delete a client")
    delete.add_argument("client_id")
    lic = sub.add_parser("license", help="inspection license files")
    lsub = lic.add_subparsers(dest="action", required=True)
    issue = lsub.add_parser("issue", help="write a signed license file for a client")
    issue.add_argument("client_id")
    issue.add_argument("-o", "--output", required=True, help="file to write ('-' for stdout)")
    issue.add_argument("--days", type=float, default=None, help="validity in days (default: no expiry)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``percept`` command; returns the exit status."""
    ns = parser().parse_args(argv)
    store = open_store(ns)
    clients = ClientStore(store)
    if ns.group == "clients" and ns.action == "create":
        client_id, secret = clients.create(ns.name)
        sys.stdout.write(f"{client_id} {secret}\n")
        return 0
    if ns.group == "clients" and ns.action == "list":
        for doc in clients.list():
            sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
        return 0
    if ns.group == "clients" and ns.action == "delete":
        if not clients.delete(ns.client_id):
            sys.stderr.write(f"no client {ns.client_id}\n")
            return 1
        return 0
    if ns.group == "license" and ns.action == "issue":
        if clients.get(ns.client_id) is None:
            sys.stderr.write(f"no client {ns.client_id}\n")
            return 1
        text = issue_license(store, ns.client_id, ns.days)
        if ns.output == "-":
            sys.stdout.write(text)
        else:
            Path(ns.output).write_text(text)
            sys.stderr.write(f"license for {ns.client_id} written to {ns.output}\n")
        return 0
    return 2  # pragma: no cover - argparse requires a known action


if __name__ == "__main__":
    raise SystemExit(main())
