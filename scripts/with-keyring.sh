#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with a real, unlocked gnome-keyring (Secret Service),
# in throwaway XDG data/runtime dirs so a developer's own keyring is never touched.
set -euo pipefail
# macOS has no D-Bus session or gnome-keyring (nor the other Linux stores): the command runs as is, and the
# suites that need a Linux store or kernel facility skip with their reason (test/support/context.ts).
if [ "$(uname -s)" != Linux ]; then exec "$@"; fi
if [ -z "${ENTRACLAW_IN_TEST_SESSION:-}" ]; then
  export ENTRACLAW_IN_TEST_SESSION=1
  exec dbus-run-session -- "$0" "$@"
fi
scratch=$(mktemp -d /tmp/entraclaw-session.XXXXXX)
trap 'kill "${GKR_PID:-}" 2>/dev/null || true; rm -rf "$scratch"' EXIT
mkdir -p "$scratch/data" "$scratch/runtime"
chmod 700 "$scratch/runtime"
export XDG_DATA_HOME="$scratch/data" XDG_RUNTIME_DIR="$scratch/runtime"
# --unlock reads the login password from stdin and creates/unlocks the login collection.
eval "$(printf 'entraclaw-test' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
# Ours is the one whose runtime dir is this scratch dir: never another session's keyring.
GKR_PID=
for pid in $(pgrep -f gnome-keyring-daemon || true); do
  if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$scratch/runtime"; then GKR_PID=$pid; fi
done
"$@"
