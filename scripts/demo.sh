#!/usr/bin/env bash
# `make run`: the broker on its embedded default store (the sealed vault) in a self-contained demo home
# under .demo/, so nothing of the user's own keyrings or config is touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo="$root/.demo"
mkdir -p "$demo/home" "$demo/run" && chmod 700 "$demo" "$demo/home" "$demo/run"
export HOME="$demo/home" XDG_CONFIG_HOME="$demo/home/.config" XDG_DATA_HOME="$demo/home/.local/share"
export XDG_STATE_HOME="$demo/home/.local/state" XDG_RUNTIME_DIR="$demo/run"
export ENTRACLAW_STORE=encrypted-file ENTRACLAW_PASSPHRASE_FILE="$demo/passphrase"
unset ENTRACLAW_SOCKET
[ -s "$ENTRACLAW_PASSPHRASE_FILE" ] || (umask 077 && head -c 24 /dev/urandom | base64 >"$ENTRACLAW_PASSPHRASE_FILE")
# The CLI runs through its own shebang (`node -- ...`): as `node main.cjs ...`, Node 20 would read a
# `--env-file` among our arguments as its own.
ec() { "$root/dist/cli/main.cjs" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Stores on this machine"
ec doctor
say "Store a demo token in the sealed vault (value from stdin, never argv)"
expires=$(node -e 'console.log(new Date(Date.now() + 86400e3).toISOString())')
printf 'demo-token-%s' "$(date +%s)" | ec secret set demo.example.com robot --kind token --expires-at "$expires" --scope read
ec secret ls
ec revoke demo-client >/dev/null 2>&1 || true
if [ "$(uname -s)" = Darwin ]; then
  # macOS: the daemon identifies callers by audit token and cannot pin a script to an interpreter there,
  # so the demo client is a compiled program (cc comes with the Xcode tools node-gyp needs anyway). The
  # socket goes under .demo/run: the default under ~/Library/Application Support can exceed macOS's
  # 104-byte socket path limit in a deep checkout.
  export ENTRACLAW_SOCKET="$XDG_RUNTIME_DIR/entraclaw/agent.sock"
  say "Pre-approve the demo client (a compiled program, pinned by SHA-256) for that one item, read only"
  cc -O2 -o "$demo/demo-client" "$root/examples/demo-client.c"
  ec register "$demo/demo-client" --grant demo.example.com/robot --ops read --name demo-client
  client=("$demo/demo-client")
  pinned="the client's executable"
else
  say "Pre-approve the demo client (node + its script, pinned by SHA-256) for that one item, read only"
  ec register "$(command -v node)" --script "$root/examples/demo-client.mjs" --grant demo.example.com/robot --ops read --name demo-client
  client=(node "$root/examples/demo-client.mjs")
  pinned="node and its script"
fi
say "Start the agent; the demo client asks it for secrets"
sock="$XDG_RUNTIME_DIR/entraclaw/agent.sock"
( for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  ENTRACLAW_SOCKET="$sock" "${client[@]}" || true
  echo
  echo "What this showed: the agent identified the client from the kernel, pinned $pinned by"
  echo "SHA-256, served the one item it was granted and refused another; every decision is in the audit log."
  echo "Next: \`make install\` puts \`entraclaw\` on your PATH; README.md, \"Everyday use\", for your own programs."
  echo
  echo "The agent keeps running. From another terminal, with the same environment:"
  echo "  HOME=$HOME XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_STATE_HOME=$XDG_STATE_HOME \\"
  echo "    $root/dist/cli/main.cjs audit --tail 5"
  echo "Press Ctrl-C to stop it." ) &
exec "$root/dist/cli/main.cjs" agent
