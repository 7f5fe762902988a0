#!/bin/bash
# Starts a private systemd --user; see user-manager.ts. Usage: user-manager.sh ID LIST VAR=VALUE... SYSTEMD --user
set -eu
id=$1 list=$2; shift 2
: > "$list"
cgroups=$(cat /proc/self/cgroup)
while IFS= read -r line; do
  ctrls=$(printf %s "$line" | cut -d: -f2); path=$(printf %s "$line" | cut -d: -f3-)
  # mountinfo: optional fields come before "-", then the type, the source and the superblock options.
  mnt=$(awk -v c="$ctrls" '{ for (s = 7; $s != "-"; s++); t = $(s + 1); n = split($(s + 3), o, ",")
      if (c == "") { if (t == "cgroup2") { print $5; exit } ; next }
      if (t != "cgroup") next
      m = split(c, w, ","); ok = 1
      for (i = 1; i <= m; i++) { f = 0; for (j = 1; j <= n; j++) if (o[j] == w[i]) f = 1; if (!f) ok = 0 }
      if (ok) { print $5; exit } }' /proc/self/mountinfo)
  [ -n "$mnt" ] || continue
  d="$mnt${path%/}/$id"
  mkdir "$d"
  printf '%s=%s\n' "$mnt" "$d" >> "$list"
  if [ -f "$d/cpuset.cpus" ]; then cat "$d/../cpuset.cpus" > "$d/cpuset.cpus"; cat "$d/../cpuset.mems" > "$d/cpuset.mems"; fi
  echo $$ > "$d/cgroup.procs"
done <<EOF
$cgroups
EOF
exec unshare --cgroup --mount --propagation private sh -c '
  set -eu
  list=$1; shift
  while IFS= read -r pair; do mount --bind "${pair#*=}" "${pair%%=*}"; done < "$list"
  if [ ! -d /run/systemd/system ]; then
    mount -t tmpfs -o mode=0755 tmpfs /run/systemd
    mkdir /run/systemd/system
  fi
  mount --make-rshared /
  exec env -i "$@"
' sh "$list" "$@"
