#!/usr/bin/env bash
# Packages every publishable crate as `cargo publish` would, and checks that each `.crate`
# carries its README and both licence files. `--no-verify`: the crates depend on each other by
# path and version, and the unpublished versions cannot be resolved from crates.io to rebuild
# the packages in isolation (.ci/downstream.sh builds the facade as a user would instead).
set -euo pipefail
cd "$(dirname "$0")/.."

# In dependency order; every library crate of the workspace is published.
crates=(
  integrations-core
  integrations-testkit
  integrations-outbox
  integrations-dashboard
  integrations-stripe
  integrations-sendgrid
  integrations-sheets
  integrations-aws
  integrations
)

# Every crate with `publish = true` is in the list, and nothing else is publishable.
publishable=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] is None:  # null: publishable anywhere
        print(p["name"])
' | sort)
expected=$(printf '%s\n' "${crates[@]}" | sort)
if [ "$publishable" != "$expected" ]; then
  echo "publishable crates differ from the list in $0:" >&2
  diff <(echo "$expected") <(echo "$publishable") >&2 || true
  exit 1
fi

args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
# --exclude-lockfile: a library's lock file is ignored by its users, and resolving one needs the
# unpublished sibling crates from crates.io.
cargo package --no-verify --exclude-lockfile --allow-dirty "${args[@]}"

dir="${CARGO_TARGET_DIR:-target}/package"
version=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "integrations"))')
fail=0
for c in "${crates[@]}"; do
  file="$dir/$c-$version.crate"
  listing=$(tar -tzf "$file")
  for f in README.md LICENSE-MIT LICENSE-APACHE Cargo.toml src/lib.rs; do
    if ! grep -qx "$c-$version/$f" <<<"$listing"; then
      echo "$file: missing $f" >&2
      fail=1
    fi
  done
  # A symlinked licence must arrive as the text, not as a link.
  if ! tar -xzOf "$file" "$c-$version/LICENSE-MIT" | grep -q "MIT License"; then
    echo "$file: LICENSE-MIT is not the licence text" >&2
    fail=1
  fi
  echo "$c: $(wc -l <<<"$listing") files, README and licences present"
done
exit "$fail"
