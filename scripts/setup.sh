#!/usr/bin/env bash
# Sets up everything the service and the tests need, from nothing, and is cheap
# to run again: slow artefacts are cached under the user's cache directory,
# keyed by version, never in the repository.
#   - uv (the installer) in its own small venv
#   - the project's venv, keyed by the lock file and the Python version
#   - the FerretDB binary (embedded MongoDB-wire server), keyed by its version
#   - compiled gettext catalogs (.mo), next to their .po files
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/feedback-bot
UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*" >&2; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

# 1. uv, pinned, installed from PyPI into the cache.
UV="$CACHE/tools/uv-$UV_VERSION/bin/uv"
if [ ! -x "$UV" ]; then
  log "installing uv $UV_VERSION"
  rm -rf "$CACHE/tools/uv-$UV_VERSION"
  "$PYTHON" -m venv "$CACHE/tools/uv-$UV_VERSION"
  "$CACHE/tools/uv-$UV_VERSION/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# 2. The venv, keyed by everything that decides its contents. The project itself
#    is not installed into it (it is on PYTHONPATH), so one cached venv serves
#    every clone of the repository.
py_tag=$("$PYTHON" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
lock_hash=$(cat "$ROOT/uv.lock" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
VENV="$CACHE/venvs/$py_tag-$lock_hash"
if [ ! -f "$VENV/.complete" ]; then
  log "creating the venv $VENV (cold: takes a minute)"
  rm -rf "$VENV"
  (cd "$ROOT" && UV_PROJECT_ENVIRONMENT="$VENV" UV_CACHE_DIR="$CACHE/uv-cache" \
    "$UV" sync --frozen --no-install-project --python "$PYTHON" --quiet)
  touch "$VENV/.complete"
fi
ln -sfn "$VENV" "$ROOT/.venv"

# 3. The embedded database binary (built with Go once per FerretDB version).
#    Skipped when MONGODB_URI points at a real server.
if [ -z "${MONGODB_URI:-}" ]; then
  (cd "$ROOT" && PYTHONPATH="$ROOT" "$VENV/bin/python" -m bot devdb build)
fi

# 4. Message catalogs: .po files are the source, .mo files are built.
(cd "$ROOT" && "$VENV/bin/pybabel" compile --statistics -d locales -D messages 2>&1 | sed 's/^/[setup] /' >&2)

log "ready: $VENV"
