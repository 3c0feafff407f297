#!/usr/bin/env bash
# Local AWS emulator for the integrations-aws tests: `moto` in server mode with SigV4 checking on.
#
#   .ci/moto.sh start   venv (if missing) → moto_server on 127.0.0.1:$MOTO_PORT → IAM user + key
#   .ci/moto.sh stop    stops the server started by `start`
#   .ci/moto.sh status  prints whether it runs
#
# `start` lets only the first $NO_AUTH requests through unsigned: they create an IAM user with an
# admin inline policy and an access key. Every request after that must carry a valid SigV4
# signature made with that key (moto answers `SignatureDoesNotMatch` / `InvalidClientTokenId`
# otherwise). The key is written to target/moto-credentials.env, which the Rust tests read
# (or set MOTO_ENDPOINT, MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY yourself).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MOTO_VERSION=5.2.5
MOTO_PORT=${MOTO_PORT:-5055}
MOTO_HOST=127.0.0.1
VENV=$ROOT/.venv
STATE=$ROOT/target/moto
PID_FILE=$STATE/moto.pid
LOG_FILE=$STATE/moto.log
CREDS_FILE=$ROOT/target/moto-credentials.env
ENDPOINT="http://$MOTO_HOST:$MOTO_PORT"
# CreateUser, PutUserPolicy, CreateAccessKey.
NO_AUTH=3

log() { printf '[moto] %s\n' "$*" >&2; }

running() {
  [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

ensure_venv() {
  if [[ -x $VENV/bin/moto_server ]] &&
     "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    return
  fi
  log "installing moto[server]==$MOTO_VERSION into $VENV"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
}

wait_ready() {
  # /moto-api/ is moto's own dashboard API: it does not count against NO_AUTH.
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "$ENDPOINT/moto-api/data.json" 2>/dev/null; then
      return 0
    fi
    if ! running; then
      log "moto_server exited; last log lines:"; tail -n 30 "$LOG_FILE" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  log "moto_server did not answer within 20 s"; tail -n 30 "$LOG_FILE" >&2 || true
  return 1
}

create_key() {
  # Unsigned-but-counted IAM calls (the first $NO_AUTH requests are not checked).
  "$VENV/bin/python" - "$ENDPOINT" "$CREDS_FILE" <<'PY'
import json, sys, boto3
endpoint, out = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
user = "integrations-tests"
iam.create_user(UserName=user)
iam.put_user_policy(UserName=user, PolicyName="admin", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName=user)["AccessKey"]
with open(out, "w") as f:
    f.write(f"MOTO_ENDPOINT={endpoint}\n")
    f.write("MOTO_REGION=us-east-1\n")
    f.write(f"MOTO_ACCESS_KEY_ID={key['AccessKeyId']}\n")
    f.write(f"MOTO_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")
PY
}

start() {
  local t0=$SECONDS
  mkdir -p "$STATE"
  if running && [[ -f $CREDS_FILE ]]; then
    log "already running (pid $(cat "$PID_FILE")) at $ENDPOINT"
    return 0
  fi
  running && stop
  rm -f "$CREDS_FILE"
  if curl -fsS -o /dev/null --max-time 2 "$ENDPOINT/moto-api/data.json" 2>/dev/null; then
    log "something not started by this script already answers at $ENDPOINT; stop it or set MOTO_PORT"
    return 1
  fi
  ensure_venv
  log "starting moto_server at $ENDPOINT (INITIAL_NO_AUTH_ACTION_COUNT=$NO_AUTH)"
  INITIAL_NO_AUTH_ACTION_COUNT=$NO_AUTH MOTO_ALLOW_NONEXISTENT_REGION=false \
    nohup "$VENV/bin/python" "$ROOT/.ci/moto_server.py" -H "$MOTO_HOST" -p "$MOTO_PORT" >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  wait_ready
  create_key
  log "ready in $((SECONDS - t0)) s; credentials in ${CREDS_FILE#"$ROOT"/}"
}

stop() {
  if running; then
    local pid; pid=$(cat "$PID_FILE")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped (pid $pid)"
  fi
  rm -f "$PID_FILE" "$CREDS_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PID_FILE")) at $ENDPOINT"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
