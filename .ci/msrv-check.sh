#!/usr/bin/env bash
# Fails when a package in the resolved dependency graph (the workspace's Cargo.lock, every
# target and feature) declares a higher `rust-version` than the workspace's, so the declared
# minimum stays true. Run it after changing Cargo.lock or `rust-version`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys

def ver(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"workspace members must share one rust-version, found {sorted(map(str, ours))}")
msrv = ours.pop()
need = sorted(
    ((p["rust_version"], p["name"], p["version"]) for p in meta["packages"]
     if p["id"] not in members and p.get("rust_version")),
    key=lambda t: ver(t[0]),
)
top = [t for t in need if ver(t[0]) == ver(need[-1][0])] if need else []
print(f"workspace rust-version {msrv}; highest in the graph: "
      + (", ".join(f"{n} {v} ({r})" for r, n, v in top) if top else "none declared"))
over = [t for t in need if ver(t[0]) > ver(msrv)]
for r, n, v in over:
    print(f"  {n} {v} needs Rust {r}", file=sys.stderr)
if over:
    sys.exit(f"{len(over)} package(s) need a newer Rust than rust-version = {msrv}: "
             "raise rust-version or pin them lower (cargo update -p NAME --precise VERSION)")
'
