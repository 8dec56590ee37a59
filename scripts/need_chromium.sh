#!/bin/sh
# The browser tests drive Chromium (tests/browser/conftest.py: `chromium` on PATH, else
# /usr/bin/chromium). Found: nothing to do. Missing: as root with apt-get, install the
# Debian package (as .ci/run does); otherwise stop at once with one line saying what to install.
# CHROMIUM names another executable to look for; SWARM_INSTALL_CHROMIUM=0 never installs.
chromium="${CHROMIUM:-chromium}"
found() { command -v "$chromium" >/dev/null 2>&1 || { [ "$chromium" = chromium ] && [ -x /usr/bin/chromium ]; }; }
found && exit 0
if [ "${SWARM_INSTALL_CHROMIUM:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing the Debian package chromium (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  found && exit 0
fi
echo "The browser tests need Chromium ($chromium, or /usr/bin/chromium): install it (Debian/Ubuntu: sudo apt-get install chromium), or run 'make test-python test-js' without them." >&2
exit 1
