#!/usr/bin/env bash
# Headless Chromium for the console's browser tests (tests/e2e/console.rs),
# from the distribution's packages.
#
#   scripts/chromium.sh install     Debian packages chromium (and its fonts) if missing
#
# The tests start /usr/bin/chromium themselves (SLUICE_CHROMIUM overrides
# the path) and fail when it is missing.
set -euo pipefail

install() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    # A font, so that the screenshots in docs/ show text.
    [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "chromium.sh: installing ${missing[*]}" >&2
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

case "${1:-}" in
    install) install ;;
    *) echo "usage: scripts/chromium.sh install" >&2; exit 2 ;;
esac
