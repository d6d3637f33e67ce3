#!/usr/bin/env bash
# LocalStack in host mode (no Docker), pinned to the last community release that runs on
# Python 3.11. Subcommands:
#   install            create/refresh the git-ignored venv (idempotent, fast when present)
#   start [DIR]        install, start on a free port, wait for health; prints the endpoint
#                      and writes DIR/endpoint and DIR/pid (DIR defaults to a new temp dir)
#   stop DIR           stop the instance started with that DIR and remove its state
# Several instances may run at once: each gets its own port and state directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv="${FLOATOVER_LOCALSTACK_VENV:-$root/.localstack/venv}"
python="${FLOATOVER_PYTHON:-python3}"
# Bump this stamp whenever the pins change so existing venvs get refreshed.
pins=(
  "localstack-core[runtime]==4.13.1"
  "cbor2<5.7"
  "pyopenssl==24.2.1"
  "cryptography==43.0.3"
  "joserfc<1.1"
  "service_identity"
)
stamp_text="${pins[*]}"

log() { printf 'localstack: %s\n' "$*" >&2; }

install() {
  if [ -x "$venv/bin/python" ] && [ -f "$venv/.floatover-pins" ] \
    && [ "$(cat "$venv/.floatover-pins")" = "$stamp_text" ]; then
    return 0
  fi
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python3-venv missing; installing it with apt-get"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing pinned LocalStack into $venv (one-time, ~1-2 min)"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
  printf '%s' "$stamp_text" >"$venv/.floatover-pins"
}

free_port() {
  "$python" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

start() {
  install
  local dir="${1:-}"
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/floatover-localstack.XXXXXX)
  mkdir -p "$dir/volume"
  local port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    log "starting on 127.0.0.1:$port (state in $dir)"
    (
      cd "$dir"
      GATEWAY_LISTEN="127.0.0.1:$port" SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 DNS_ADDRESS=0 \
        LOCALSTACK_VOLUME_DIR="$dir/volume" SERVICES="ec2,s3,sts,iam,route53" EAGER_SERVICE_LOADING=0 \
        setsid "$venv/bin/python" -m localstack.runtime.main >"$dir/localstack.log" 2>&1 &
      echo $! >"$dir/pid"
    )
    local i
    for i in $(seq 1 120); do
      if curl -sf "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1; then
        echo "http://127.0.0.1:$port" >"$dir/endpoint"
        log "ready after ${i}x0.5s"
        echo "$dir"
        return 0
      fi
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        log "process exited; last log lines:"; tail -n 20 "$dir/localstack.log" >&2
        break
      fi
      sleep 0.5
    done
    stop_dir "$dir" keep
  done
  log "could not start LocalStack (see $dir/localstack.log)"
  return 1
}

stop_dir() {
  local dir="$1" keep="${2:-}"
  if [ -f "$dir/pid" ]; then
    local pid; pid=$(cat "$dir/pid")
    # setsid made the server a process-group leader: stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$dir/pid" "$dir/endpoint"
  fi
  [ -n "$keep" ] || rm -rf "$dir"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "${1:-}" ;;
  stop) shift; [ -n "${1:-}" ] || { log "usage: stop DIR"; exit 2; }; stop_dir "$1" ;;
  *) echo "usage: $0 install | start [DIR] | stop DIR" >&2; exit 2 ;;
esac
