#!/usr/bin/env bash
# Debian's Chromium for the playground's browser tests (Playwright drives it; Playwright's own browser
# download is never used). Installs it when missing and possible; otherwise says so, and those tests skip.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no chromium, and no root apt-get to install it with: the browser tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
    echo "install_chromium: $(chromium --version 2>/dev/null)"
else
    echo "install_chromium: apt-get could not install chromium: the browser tests will skip" >&2
fi
exit 0
