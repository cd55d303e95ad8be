#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real (headless Chromium and its
# driver for the UI test, PostgreSQL for the store test, fonts for the OCR test images) when they
# are missing and we can.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# fonts the OCR tests render text with (tests/ocr/textimages.py)
for font in fonts-dejavu-core fonts-liberation fonts-noto-core; do
  dpkg -s "$font" >/dev/null 2>&1 || need+=("$font")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "sysdeps: missing ${need[*]} (install them to run the browser/PostgreSQL tests)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
