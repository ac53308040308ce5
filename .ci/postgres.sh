#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints its URL on stdout.
#
#   eval "$(bash .ci/postgres.sh start)"   # exports XRAY_TEST_POSTGRES_URL and XRAY_TEST_POSTGRES_DIR
#   bash .ci/postgres.sh stop "$XRAY_TEST_POSTGRES_DIR"
#
# Installs Debian's `postgresql` when no server binaries are found. The cluster lives in a
# temporary directory owned by the `postgres` user (initdb refuses to run as root), listens on
# a free loopback port only, trusts local connections, and runs with fsync off: it holds test
# data only.
set -euo pipefail

find_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
    fi
  done | sort -V | tail -n 1
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps the environment minimal and needs no password.
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

start() {
  local bindir
  bindir="$(find_bindir)"
  if [ -z "$bindir" ]; then
    echo "installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bindir="$(find_bindir)"
  fi
  if [ -z "$bindir" ]; then
    echo "no PostgreSQL server binaries found under /usr/lib/postgresql" >&2
    exit 1
  fi
  local dir port
  dir="$(mktemp -d /tmp/xray-pg.XXXXXX)"
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
  fi
  port="$(free_port)"
  as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    >&2 || { cat "$dir/server.log" >&2; exit 1; }
  echo "export XRAY_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$port/postgres'"
  echo "export XRAY_TEST_POSTGRES_DIR='$dir'"
  echo "export XRAY_TEST_POSTGRES_BIN='$bindir'"
}

stop() {
  local dir="${1:-}" bindir
  [ -n "$dir" ] && [ -d "$dir/data" ] || return 0
  bindir="$(find_bindir)"
  as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
