#!/usr/bin/env bash
# Lists `package:feature` for every non-default feature of every workspace crate, so CI can check
# that each compiles alone.
cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for f in sorted(p["features"]):
        if f != "default":
            print(p["name"] + ":" + f)
'
