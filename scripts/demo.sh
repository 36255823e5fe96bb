#!/usr/bin/env bash
# Set up (first run: a minute or two) and run `bigr demo`; open bigr-demo/index.html after.
set -euo pipefail
cd "$(dirname "$0")/.."
BIGR_EXTRAS="${BIGR_EXTRAS:-eval,hub}" . scripts/install.sh
bigr demo --out "${1:-bigr-demo}"
