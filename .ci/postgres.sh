#!/usr/bin/env bash
# Throwaway Postgres for the integrations-outbox Postgres tests (and the examples on Postgres).
#
#   .ci/postgres.sh start   install Debian's `postgresql` if `initdb` is missing → a fresh
#                           cluster in a temp dir → postgres on 127.0.0.1:<free port> → URL file
#   .ci/postgres.sh stop    stops the server started by `start` and deletes its cluster
#   .ci/postgres.sh status  prints whether it runs
#
# Postgres refuses to run as root, and CI runs as root: the cluster is then created and run by
# the `postgres` system user that the Debian package creates (`runuser -u postgres --`). As any
# other user it runs as that user. The cluster listens on 127.0.0.1 only (no Unix socket in a
# shared directory), with scram-sha-256 password authentication for a random password.
#
# The URL is written to target/postgres.env as INTEGRATIONS_TEST_POSTGRES_URL=…, which
# `scripts/test` exports and the Rust tests also read directly (or set the variable yourself
# to use another server; each test creates and drops its own database there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STATE=$ROOT/target/postgres
DIR_FILE=$STATE/cluster-dir
URL_FILE=$ROOT/target/postgres.env
PG_USER=integrations

log() { printf '[postgres] %s\n' "$*" >&2; }

pg_bin() {
  local d
  # The highest installed major version.
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1 || true)
  if [[ -n $d && -x $d/initdb ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

ensure_installed() {
  if pg_bin >/dev/null; then return; fi
  log "initdb not found: installing Debian's postgresql"
  local apt_get="apt-get"
  [[ $(id -u) = 0 ]] || apt_get="sudo apt-get"
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq postgresql >/dev/null
  pg_bin >/dev/null || { log "postgresql installed but no initdb found"; return 1; }
}

# Runs a command as the unprivileged cluster owner.
as_owner() {
  if [[ $(id -u) = 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [[ -f $DIR_FILE ]] || return 1
  local dir; dir=$(cat "$DIR_FILE")
  [[ -d $dir/data ]] && as_owner "$(pg_bin)/pg_ctl" status -D "$dir/data" >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local t0=$SECONDS
  mkdir -p "$STATE"
  if running && [[ -f $URL_FILE ]]; then
    log "already running (cluster $(cat "$DIR_FILE"))"
    return 0
  fi
  running && stop
  rm -f "$URL_FILE"
  ensure_installed
  local bin; bin=$(pg_bin)
  local dir; dir=$(mktemp -d /tmp/integrations-postgres.XXXXXX)
  echo "$dir" >"$DIR_FILE"
  chmod 755 "$dir"
  local password; password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  printf '%s\n' "$password" >"$dir/pwfile"
  if [[ $(id -u) = 0 ]]; then chown -R postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { log "initdb failed:"; cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pwfile"
  local port; port=$(free_port)
  log "starting $("$bin/postgres" --version) on 127.0.0.1:$port (cluster $dir)"
  # fsync stays on: the bench compares durable stores. max_connections covers parallel tests.
  as_owner "$bin/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c max_connections=300" \
    >/dev/null || { log "postgres did not start:"; tail -n 30 "$dir/server.log" >&2; return 1; }
  local url="postgres://$PG_USER:$password@127.0.0.1:$port/postgres"
  local i
  for i in $(seq 1 100); do
    if PGPASSWORD=$password "$bin/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres \
      -Atc 'SELECT 1' >/dev/null 2>&1; then
      printf 'INTEGRATIONS_TEST_POSTGRES_URL=%s\n' "$url" >"$URL_FILE"
      chmod 600 "$URL_FILE"
      log "ready in $((SECONDS - t0)) s; URL in ${URL_FILE#"$ROOT"/}"
      return 0
    fi
    sleep 0.2
  done
  log "postgres did not accept connections within 20 s"; tail -n 30 "$dir/server.log" >&2
  return 1
}

stop() {
  if [[ -f $DIR_FILE ]]; then
    local dir; dir=$(cat "$DIR_FILE")
    if [[ -d $dir/data ]]; then
      as_owner "$(pg_bin)/pg_ctl" stop -D "$dir/data" -m fast -w >/dev/null 2>&1 || true
      log "stopped (cluster $dir)"
    fi
    case $dir in /tmp/integrations-postgres.*) rm -rf "$dir" ;; esac
  fi
  rm -f "$DIR_FILE" "$URL_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (cluster $(cat "$DIR_FILE"))"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
