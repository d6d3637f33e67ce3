#!/usr/bin/env bash
# moto's server, the second AWS emulator: it serves what the community LocalStack does not
# (RDS, Auto Scaling, ECS, EKS, CloudWatch). Pinned; runs beside LocalStack. Subcommands:
#   install            create/refresh the git-ignored venv (idempotent, fast when present)
#   start [DIR]        install, start on a free port, wait until it answers; prints DIR and
#                      writes DIR/endpoint and DIR/pid (DIR defaults to a new temp dir)
#   stop DIR           stop the instance started with that DIR and remove it
# Several instances may run at once: each gets its own port.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
venv="${FLOATOVER_MOTO_VENV:-$root/.moto/venv}"
python="${FLOATOVER_PYTHON:-python3}"
# Bump with the pins so existing venvs get refreshed.
pins=("moto[server]==5.2.5" "cbor2==5.6.5")
stamp_text="${pins[*]}"

log() { printf 'moto: %s\n' "$*" >&2; }

install() {
  if [ -x "$venv/bin/moto_server" ] && [ -f "$venv/.floatover-pins" ] \
    && [ "$(cat "$venv/.floatover-pins")" = "$stamp_text" ]; then
    return 0
  fi
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python3-venv missing; installing it with apt-get"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing pinned moto into $venv (one-time, ~30 s)"
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
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/floatover-moto.XXXXXX)
  mkdir -p "$dir"
  local port attempt i
  for attempt in 1 2 3; do
    port=$(free_port)
    log "starting on 127.0.0.1:$port"
    (
      cd "$dir"
      setsid "$venv/bin/python" "$here/server.py" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
      echo $! >"$dir/pid"
    )
    for i in $(seq 1 60); do
      if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
        echo "http://127.0.0.1:$port" >"$dir/endpoint"
        log "ready after ${i}x0.5s"
        echo "$dir"
        return 0
      fi
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        log "process exited; last log lines:"; tail -n 20 "$dir/moto.log" >&2
        break
      fi
      sleep 0.5
    done
    stop_dir "$dir" keep
  done
  log "could not start moto (see $dir/moto.log)"
  return 1
}

stop_dir() {
  local dir="$1" keep="${2:-}"
  if [ -f "$dir/pid" ]; then
    local pid; pid=$(cat "$dir/pid")
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
