#!/usr/bin/env bash
# Sets up everything the service and the tests need, from nothing, and is cheap
# to run again: slow artefacts are cached under the user's cache directory,
# keyed by version, never in the repository.
#   - uv (the installer) in its own small venv
#   - the project's venv, keyed by the lock file and the Python version
#   - the FerretDB binary (embedded MongoDB-wire server), keyed by its version
#   - compiled gettext catalogs (.mo), next to their .po files
#   - the chat widget's and the console's bundles (widget/dist/), their npm packages from the
#     lock file (npm's download cache under the cache directory)
#   - Debian's chromium for the browser tests (BOT_SKIP_CHROMIUM=1 skips it)
#   - Debian's redis-server for the tests of several processes
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

# 5. The chat widget: npm packages exactly as locked (reinstalled only when the lock
#    file changes: its hash is stamped into node_modules), then the esbuild bundle
#    (rebuilt only when a source or the lock file is newer than the bundle).
WIDGET="$ROOT/widget"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: Node.js 18 or newer with npm is required to build the chat widget (widget/)." >&2
  echo "setup: install them (Debian: apt-get install nodejs npm) and run again." >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)'; then
  echo "setup: Node.js 18 or newer is required to build the chat widget (found: $(node --version))." >&2
  exit 1
fi
lock_sum=$(sha256sum "$WIDGET/package-lock.json" | cut -d' ' -f1)
stamp="$WIDGET/node_modules/.package-lock.sha256"
if [ ! -d "$WIDGET/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  log "installing the widget's npm packages"
  (cd "$WIDGET" && npm_config_cache="$CACHE/npm" npm ci --no-audit --no-fund --loglevel=error 2>&1 |
    sed '/^[[:space:]]*$/d; s/^/[setup] /' >&2)
  printf '%s\n' "$lock_sum" >"$stamp"
fi
bundle="$WIDGET/dist/widget.js"
if [ ! -f "$bundle" ] || [ ! -f "$WIDGET/dist/console.js" ] ||
  [ -n "$(find "$WIDGET/src" "$WIDGET/package.json" "$WIDGET/package-lock.json" -newer "$bundle" -print -quit)" ]; then
  log "building the widget and the console script"
  (cd "$WIDGET" && npm run --silent build 2>&1 | sed '/^[[:space:]]*$/d; s/^/[setup] /' >&2)
fi

# 6. Chromium for the browser tests: Debian's package, driven by Playwright with
#    executable_path (never `playwright install`, which downloads its own browser). With
#    a Chinese font (1.6 MB), or the zh_CN screenshots show empty boxes for every character.
CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if [ "${BOT_SKIP_CHROMIUM:-}" != "1" ] && { [ ! -x /usr/bin/chromium ] || [ ! -f "$CJK_FONT" ]; }; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium and a Chinese font for the browser tests (apt-get)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null; }; then
      log "warning: could not install chromium; the browser tests will fail (BOT_SKIP_CHROMIUM=1 skips this step)"
    fi
  else
    log "the browser tests need /usr/bin/chromium: install the Debian package 'chromium'"
    log "(sudo apt-get install --no-install-recommends chromium fonts-wqy-microhei), or set BOT_SKIP_CHROMIUM=1"
  fi
fi

# 7. Redis for the tests of several processes (they start their own redis-server on a
#    free port) and for running several processes locally: Debian's package.
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-server for the scale-out tests (apt-get)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }; then
      log "warning: could not install redis-server; the scale-out tests will fail"
    fi
  else
    log "the scale-out tests need redis-server: install the Debian package 'redis-server'"
    log "(sudo apt-get install --no-install-recommends redis-server)"
  fi
fi

log "ready: $VENV"
