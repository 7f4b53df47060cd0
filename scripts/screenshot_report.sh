#!/usr/bin/env bash
# Render results/report.html in headless Chromium and save a full-page screenshot, to look at the
# report as a reader's browser shows it. Needs Debian's chromium (apt-get install chromium).
#   scripts/screenshot_report.sh [REPORT_HTML] [OUTPUT_PNG] [HEIGHT_PX]
set -euo pipefail
report=$(realpath "${1:-results/report.html}")
output=$(realpath -m "${2:-results/report-screenshot.png}")
height=${3:-6000}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "screenshot_report: chromium not found (Debian: apt-get install chromium)" >&2
  exit 2
fi
[ -f "$report" ] || { echo "screenshot_report: no report at $report (run: python -m bench report)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# The flags keep Chromium off the network: the page is self-contained and must render offline.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1280,"$height" \
  --screenshot="$output" "file://$report" 2>/dev/null
echo "wrote $output"
