#!/usr/bin/env bash
# The serve page's screenshot in the docs (docs/how-to/serve-page.png): `cifar_cnn_bn` trained on the embedded
# CIFAR-10 sample in a scratch folder (the stage commands `dvc repro` runs), served by `pipeline serve`, one test
# image posted to its form, and the answer drawn by headless Chromium (Debian's `chromium` package).
#
#   uv run bash scripts/serve_screenshot.sh      # a few minutes on 2 CPU cores
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$scratch"' EXIT
cp "$repo/params.yaml" "$scratch/"
cd "$scratch"
export PYTHONPATH="$repo"
for stage in download settings split preprocess; do python -m pipeline "$stage" cifar10; done
python -m pipeline train cifar_cnn_bn -S train.device=cpu
python - <<'PY'
import zipfile
with zipfile.ZipFile("data/raw/cifar10/images.zip") as archive:
    name = next(name for name in sorted(archive.namelist()) if name.startswith("test/airplane/"))
    open("airplane.png", "wb").write(archive.read(name))
PY
port=8765
python -m pipeline serve cifar_cnn_bn --port "$port" --device cpu &
server=$!
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 1; done
curl -sf -F "file=@airplane.png" "http://127.0.0.1:$port/" > page.html
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=800,400 \
  --screenshot="$repo/docs/how-to/serve-page.png" "file://$scratch/page.html"
