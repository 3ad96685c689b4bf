#!/usr/bin/env bash
# The tuning dashboard's screenshot in the docs (docs/how-to/tune-dashboard.png): a study of `cifar_mlp` on the
# embedded CIFAR-10 sample, 6 trials drawn by 2 workers (`pipeline tune --workers 2`) in a scratch clone of the last
# commit, served by `pipeline tune --dashboard` and drawn by headless Chromium (Debian's `chromium` package).
#
#   uv run bash scripts/tune_dashboard_screenshot.sh      # several minutes on 2 CPU cores
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$scratch"' EXIT
export GIT_AUTHOR_NAME=shot GIT_COMMITTER_NAME=shot GIT_AUTHOR_EMAIL=shot@example.com GIT_COMMITTER_EMAIL=shot@example.com
git clone -q "$repo" "$scratch/repo"
cd "$scratch/repo"
dvc repro -q preprocess@cifar10
git add -A && git commit -qm data --allow-empty
python -m pipeline tune cifar_mlp --workers 2 --trials 6 --seeds 0
port=8766
python -m pipeline tune cifar_mlp --dashboard --port "$port" &
server=$!
until curl -sf "http://127.0.0.1:$port/api/studies" >/dev/null; do sleep 1; done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,900 --virtual-time-budget=15000 \
  --screenshot="$repo/docs/how-to/tune-dashboard.png" "http://127.0.0.1:$port/dashboard/studies/1"
