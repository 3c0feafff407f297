#!/usr/bin/env bash
# Builds the facade as a downstream user would get it: a scratch crate outside the workspace,
# depending on `integrations` by path with every feature, resolved afresh (newest compatible
# versions, not the workspace's Cargo.lock), then `cargo check`.
#
# DOWNSTREAM_TARGET_DIR: where to build (default: a fresh directory, removed afterwards).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/integrations-downstream.XXXXXX")"
target="${DOWNSTREAM_TARGET_DIR:-$scratch/target}"
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$scratch/src"
cat > "$scratch/Cargo.toml" <<TOML
[package]
name = "downstream-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
integrations = { path = "$root/integrations", features = [
    "stripe", "sendgrid", "sheets",
    "aws-dynamodb", "aws-sns", "aws-ses", "aws-sqs", "aws-cloudwatch", "aws-outbox", "aws-config",
    "outbox", "sqlite", "postgres", "axum", "sandbox", "testkit", "dashboard", "opentelemetry", "tower",
    "reqwest-middleware", "metrics",
] }

[workspace]
TOML
cat > "$scratch/src/main.rs" <<'RS'
use integrations::stripe::StripeBuilder;

fn main() {
    let _ = StripeBuilder::from_env().build();
}
RS

cd "$scratch"
cargo generate-lockfile
echo "resolved $(grep -c '^name = ' Cargo.lock) packages; newest of note:"
grep -A1 -E '^name = "(aws-sigv4|aws-smithy-runtime-api|tokio|reqwest|time)"$' Cargo.lock | grep -v '^--' | paste - - || true
CARGO_TARGET_DIR="$target" cargo check --quiet
echo "downstream build: ok"
