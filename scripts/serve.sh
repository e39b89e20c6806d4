#!/usr/bin/env bash
# `make run`: the service, after scripts/setup.sh. When BOT_REDIS_URL names a Redis on
# this machine (localhost, 127.0.0.1 or ::1) that does not answer, Debian's redis-server
# (installed by scripts/setup.sh) is started there for as long as the service runs, in
# memory only: nothing in it has to outlive a restart (README, "Several processes").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

answers() {  # host port: whether something listens there
  "$PY" -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' \
    "$1" "$2" 2>/dev/null
}

if [ -n "${BOT_REDIS_URL:-}" ]; then
  # host, port and password of the URL (redis-py's defaults: port 6379)
  read -r host port password < <("$PY" -c '
import os, urllib.parse
url = urllib.parse.urlsplit(os.environ["BOT_REDIS_URL"])
print(url.hostname or "", url.port or 6379, urllib.parse.unquote(url.password or "") or "-")')
  case "$host" in
    localhost | 127.0.0.1 | ::1)
      if ! answers "$host" "$port"; then
        echo "serve.sh: starting redis-server on $host:$port (BOT_REDIS_URL)" >&2
        args=(--bind "$host" --port "$port" --save "" --appendonly no --loglevel warning)
        [ "$password" != "-" ] && args+=(--requirepass "$password")
        redis-server "${args[@]}" &
        redis_pid=$!
        # Stopped, and waited for, when the service stops: gone once `make run` returns.
        trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true' EXIT
        for _ in $(seq 100); do answers "$host" "$port" && break; sleep 0.1; done
      fi
      ;;
  esac
fi

"$PY" -m bot serve
