#!/usr/bin/env bash
# A local oms cluster: a throwaway PostgreSQL 15 (scripts/pgtmp.py) and three
# omsd instances on it, on 127.0.0.1, with the demo data. Runs in the
# foreground until Ctrl-C / SIGTERM, then stops the instances (they drain),
# stops PostgreSQL and removes its directory. `make cluster` runs it.
#
#   scripts/cluster.sh [--build DIR] [--ports P1,P2,P3] [--certs DIR] [--h2c]
#                      [--dir DIR] [-- OMSD_FLAGS...]
#
#   --build DIR    where omsd was built (default build/ of this tree)
#   --ports LIST   three ports (default 50071,50072,50073; 0 = a free port,
#                  as the tests use); OMS_CLUSTER_PORTS sets the default
#   --certs DIR    server.pem/server.key/ca.pem for TLS (default certs/ of this
#                  tree, made by scripts/certs.sh when missing)
#   --h2c          plaintext HTTP/2 instead of TLS
#   --dir DIR      working directory (must not exist; default a new
#                  /tmp/oms-cluster.XXXXXX), removed at the end
#   OMSD_FLAGS     passed to every instance (e.g. --workers 1, --event-poll-ms 50)
#
# Once everything listens it prints the instances, then one line
#   cluster ready: 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
# (tests wait for it). Instance 1 starts first and seeds the demo data into
# the empty database; 2 and 3 start after it and find it there. An instance
# that exits (or is killed, to try failover) is reported and the others carry
# on; the script exits 1 when none is left.
# PostgreSQL is tied to this script's process: even a kill -9 of the script
# stops it (pgtmp.py --owner); the instances get SIGTERM when it dies
# (setpriv --pdeathsig). The instances run in sessions of their own: Ctrl-C
# reaches the script, which stops each with one SIGTERM.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=$root/build
ports=${OMS_CLUSTER_PORTS:-50071,50072,50073}
certs=$root/certs
h2c=0
dir=
omsd_flags=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --ports) ports=$2; shift 2 ;;
    --certs) certs=$2; shift 2 ;;
    --h2c) h2c=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --) shift; omsd_flags=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "cluster.sh: unknown argument $1" >&2; usage ;;
  esac
done

IFS=, read -r -a port_list <<<"$ports"
if [ ${#port_list[@]} -ne 3 ]; then
  echo "cluster.sh: --ports takes three ports, got '$ports'" >&2
  exit 2
fi
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
certs=$(mkdir -p "$certs" && cd "$certs" && pwd)
omsd=$build/omsd
if [ ! -x "$omsd" ]; then
  echo "cluster.sh: no $omsd (make build, or --build DIR)" >&2
  exit 1
fi
transport_args=(--h2c)
if [ $h2c = 0 ]; then
  [ -s "$certs/server.pem" ] || bash "$here/certs.sh" "$certs" >&2
  transport_args=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key")
fi

if [ -z "$dir" ]; then
  dir=$(mktemp -d /tmp/oms-cluster.XXXXXX)
else
  mkdir "$dir"
fi
dir=$(cd "$dir" && pwd)
chmod 755 "$dir" # as root, PostgreSQL runs as `postgres` and must reach $dir/pg
pids=()
stopping=0

# Stops the instances (SIGTERM: they drain), then PostgreSQL; removes $dir.
cleanup() {
  local rc=$?
  [ $stopping = 1 ] && return
  stopping=1
  trap '' INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo "cluster: stopping omsd ${pids[*]}" >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  fi
  if [ -d "$dir/pg" ]; then
    echo "cluster: stopping PostgreSQL" >&2
    /usr/bin/python3 "$here/pgtmp.py" stop --dir "$dir/pg" || true
  fi
  wait 2>/dev/null || true # the stdout drains end with their omsd
  rm -rf "$dir"
  echo "cluster: stopped" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

url=$(/usr/bin/python3 "$here/pgtmp.py" start --dir "$dir/pg" --owner $$)
echo "cluster: PostgreSQL at $url (data in $dir/pg)" >&2

# Starts instance $1 on port $2; sets its real port from the first stdout line
# ("listening on HOST:PORT (tls|h2c)") read through a fifo, whose rest a
# background cat drains into the instance's stdout file.
started_port=
start_omsd() {
  local n=$1 port=$2 wd=$dir/omsd-$1 line fd
  mkdir "$wd"
  mkfifo "$wd/stdout.fifo"
  # setsid: a terminal's Ctrl-C reaches this script alone, which then stops
  # each instance with one SIGTERM (a second signal makes omsd exit at once,
  # without its drain)
  (cd "$wd" && exec setsid setpriv --pdeathsig TERM "$omsd" --listen "127.0.0.1:$port" \
     "${transport_args[@]}" --store "$url" "${omsd_flags[@]}" \
     >"$wd/stdout.fifo" 2>"$wd/omsd.log") &
  pids+=($!)
  exec {fd}<"$wd/stdout.fifo"
  if ! IFS= read -r -t 60 -u "$fd" line || [[ $line != "listening on "* ]]; then
    echo "cluster: omsd $n did not start (${line:-no output}); its log:" >&2
    tail -n 20 "$wd/omsd.log" >&2
    exit 1
  fi
  cat <&"$fd" >"$wd/stdout" &
  exec {fd}<&-
  started_port=${line#listening on 127.0.0.1:}
  started_port=${started_port%% *}
  echo "cluster: omsd $n pid ${pids[-1]} listening on 127.0.0.1:$started_port (log $wd/omsd.log)" >&2
}

targets=()
for i in 1 2 3; do
  start_omsd $i "${port_list[$((i - 1))]}"
  targets+=("127.0.0.1:$started_port")
done
all=$(IFS=,; echo "${targets[*]}")
ctl=$build/omsctl
if [ $h2c = 1 ]; then ctl="$ctl --h2c"; else ctl="$ctl --ca $certs/ca.pem"; fi
cat <<EOF
cluster ready: $all
  all three (round robin):  $ctl --target $all customers
  a watch on instance 1:    $ctl --target ${targets[0]} watch --since 1
  an order on instance 3:   $ctl --target ${targets[2]} create c-1 SKU-001:1
  psql:                     psql $url
Ctrl-C stops everything.
EOF

# Until a signal (the trap exits 0). An instance that exits by itself (or is
# killed, to try failover) is reported; the others carry on; when none is
# left the script exits 1.
set +e
live=("${pids[@]}")
while [ ${#live[@]} -gt 0 ]; do
  unset gone
  wait -n -p gone "${live[@]}"
  rc=$?
  [ -n "${gone:-}" ] || continue
  echo "cluster: omsd pid $gone exited (status $rc); $((${#live[@]} - 1)) left" >&2
  rest=()
  for p in "${live[@]}"; do [ "$p" = "$gone" ] || rest+=("$p"); done
  live=("${rest[@]}")
done
exit 1
