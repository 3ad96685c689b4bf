#!/usr/bin/env bash
# The audit review page's screenshot in the docs (docs/how-to/audit-review-page.png): the embedded CIFAR-10 sample
# audited in a scratch folder with label issues on and a small budget (2 folds of 2 epochs: the folds are near
# chance, so they flag many images, which is what a picture of the page needs), reviewed by
# `pipeline audit review cifar10 --web`, two decisions posted, and the page drawn by headless Chromium (Debian's
# `chromium` package).
#
#   uv run bash scripts/review_screenshot.sh      # about four minutes on 2 shared CPU cores (the folds most of it)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$scratch"' EXIT
cp "$repo/params.yaml" "$scratch/"
cd "$scratch"
export PYTHONPATH="$repo"
budget=(-S audit.cifar10.sample.label_issues=true -S audit.cifar10.sample.folds=2 -S audit.cifar10.sample.epochs=2
        -S train.device=cpu)
for stage in download settings split preprocess; do python -m pipeline "$stage" cifar10; done
python -m pipeline audit cifar10 "${budget[@]}"
port=8766
python -m pipeline audit review cifar10 --web --port "$port" &
server=$!
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 1; done
python - "$port" <<'PY'
import sys

import httpx

url = f"http://127.0.0.1:{sys.argv[1]}"
findings = httpx.get(f"{url}/findings").json()["findings"]
first, second = findings[:2]  # the top label issues
httpx.post(f"{url}/decisions", json={"path": first["images"][0]["path"], "action": "relabel",
                                     "label": first["suggested"]}).raise_for_status()
httpx.post(f"{url}/decisions", json={"path": second["images"][0]["path"], "action": "exclude"}).raise_for_status()
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,760 --virtual-time-budget=5000 \
  --screenshot="$repo/docs/how-to/audit-review-page.png" "http://127.0.0.1:$port/"
