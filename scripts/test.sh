#!/usr/bin/env bash
# Set up everything the tests use (system packages: Fashion-MNIST and chromium; the package's
# test, server, browser and text extras) and run the suite and the linters. Under CI (CI=true)
# a system package that cannot be installed is an error, not a skipped test.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null) \
      || { echo "could not install ${need[*]}" >&2; [ "${CI:-}" != true ] || exit 1; }
  else
    echo "warning: ${need[*]} not installed (apt-get install ${need[*]}); those tests skip" >&2
    [ "${CI:-}" != true ] || exit 1
  fi
fi
BIGR_EXTRAS="dev,eval,hub,serve,browser,text,tensorboard" . scripts/install.sh
python -m pytest "$@"
ruff check .
ruff format --check .
