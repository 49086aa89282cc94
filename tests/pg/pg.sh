#!/usr/bin/env bash
# A throw-away PostgreSQL (Debian's server binaries) for tests and
# benchmarks: its own data directory under a temporary folder, a unix socket
# in that folder and 127.0.0.1 on a free port, trust authentication, no
# other network. As root it runs as the `postgres` system user (PostgreSQL
# refuses root).
#
#   eval "$(bash tests/pg/pg.sh start [options])"   # exports the variables below
#   bash tests/pg/pg.sh stop "$KOTTE_TEST_PG_DIR"    # stops it and removes the folder
#
# start options:
#   --dir DIR          use DIR (created) instead of a fresh mktemp folder
#   --port N           TCP port (default: a free one in 20000-59999)
#   --no-schema        do not create the kotte database and schema
#   --standby-of DIR   a streaming standby (pg_basebackup) of the server in DIR
#   --durable          keep fsync on (benchmarks); tests run with fsync=off
#   -c NAME=VALUE      extra server setting (repeatable)
#
# start prints shell assignments (export ...), for eval:
#   KOTTE_TEST_PG_DIR       the folder (data in DIR/data, log in DIR/log)
#   KOTTE_TEST_PG_PORT      the TCP port
#   KOTTE_TEST_PG_CONNINFO  the application role kotte_app (DML only) on database kotte
#   KOTTE_TEST_PG_OWNER_CONNINFO  the database owner kotte (runs migrations)
#   KOTTE_TEST_PG_SUPER_CONNINFO  the superuser postgres on database postgres
#   KOTTE_TEST_PG_BIN       the server's bin folder
# Unless --no-schema: database kotte owned by role kotte, every file of
# sql/migrations/ in order and sql/roles/app_role.sql applied (as CloudNativePG's
# bootstrap does), sql/extensions/ only where the extension is installed, and
# kotte_app allowed to log in.
#
# Other commands: `status DIR`, `restart DIR [fast|immediate]`, `stop-server DIR
# [fast|immediate]` (keeps the folder), `start-server DIR`, `promote DIR`,
# `psql DIR [psql args]` (as postgres on database kotte).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

pg_bin() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  echo "pg.sh: no PostgreSQL server binaries (apt-get install postgresql-15)" >&2
  exit 1
}
BIN=$(pg_bin)

as_pg() { # runs a command as the postgres user when we are root
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "pg.sh: no free port" >&2
  exit 1
}

port_of() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$1/data/postgresql.auto.conf" "$1/data/kotte.conf" 2>/dev/null | tail -1; }

psql_as() { # dir user db args...
  local dir=$1 user=$2 db=$3; shift 3
  as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(port_of "$dir")" -U "$user" -d "$db" "$@"
}

server_start() { # dir
  as_pg "$BIN/pg_ctl" -D "$1/data" -l "$1/log" -w -t 60 start >/dev/null ||
    { echo "pg.sh: server did not start; log:" >&2; tail -20 "$1/log" >&2; return 1; }
}

server_stop() { # dir mode
  [ -f "$1/data/postmaster.pid" ] || return 0
  as_pg "$BIN/pg_ctl" -D "$1/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}

write_conf() { # dir port durable extra...
  local dir=$1 port=$2 durable=$3; shift 3
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    echo "max_connections = 200"
    echo "wal_level = replica"
    echo "max_wal_senders = 4"
    echo "hot_standby = on"
    echo "logging_collector = off"
    echo "log_min_messages = warning"
    [ "$durable" = 1 ] || { echo "fsync = off"; echo "full_page_writes = off"; }
    local kv
    for kv in "$@"; do echo "${kv%%=*} = '${kv#*=}'"; done
  } >"$dir/data/kotte.conf"
  grep -q "include_if_exists = 'kotte.conf'" "$dir/data/postgresql.conf" ||
    echo "include_if_exists = 'kotte.conf'" >>"$dir/data/postgresql.conf"
  chown -R "$(stat -c %u "$dir")" "$dir/data/kotte.conf"
}

apply_schema() { # dir
  local dir=$1 f
  psql_as "$dir" postgres postgres -c "CREATE ROLE kotte LOGIN" -c "CREATE DATABASE kotte OWNER kotte" >/dev/null
  local has_age
  has_age=$(psql_as "$dir" postgres kotte -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'age'")
  if [ "$has_age" = 1 ]; then
    for f in "$root"/sql/extensions/*.sql; do psql_as "$dir" postgres kotte -f - <"$f" >/dev/null; done
  fi
  for f in $(ls "$root"/sql/migrations/*.sql | sort); do psql_as "$dir" kotte kotte -f - <"$f" >/dev/null; done
  psql_as "$dir" postgres kotte -f - <"$root/sql/roles/app_role.sql" >/dev/null
  psql_as "$dir" postgres kotte -c "ALTER ROLE kotte_app LOGIN" >/dev/null
}

print_env() { # dir port
  local dir=$1 port=$2
  cat <<EOT
export KOTTE_TEST_PG_DIR='$dir'
export KOTTE_TEST_PG_PORT='$port'
export KOTTE_TEST_PG_BIN='$BIN'
export KOTTE_TEST_PG_CONNINFO='host=$dir port=$port user=kotte_app dbname=kotte'
export KOTTE_TEST_PG_OWNER_CONNINFO='host=$dir port=$port user=kotte dbname=kotte'
export KOTTE_TEST_PG_SUPER_CONNINFO='host=$dir port=$port user=postgres dbname=postgres'
EOT
}

cmd_start() {
  local dir="" port="" schema=1 standby_of="" durable=0 extra=()
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) dir=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      --no-schema) schema=0; shift ;;
      --standby-of) standby_of=$2; shift 2 ;;
      --durable) durable=1; shift ;;
      -c) extra+=("$2"); shift 2 ;;
      *) echo "pg.sh: unknown option $1" >&2; exit 2 ;;
    esac
  done
  if [ -z "$dir" ]; then dir=$(mktemp -d /tmp/kotte-pg-XXXXXX); else mkdir -p "$dir"; fi
  [ -n "$port" ] || port=$(free_port)
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  if [ -n "$standby_of" ]; then
    as_pg "$BIN/pg_basebackup" -h "$standby_of" -p "$(port_of "$standby_of")" -U postgres \
      -D "$dir/data" -R -X stream --checkpoint=fast --no-sync >/dev/null
    write_conf "$dir" "$port" "$durable" "${extra[@]+"${extra[@]}"}"
    server_start "$dir"
  else
    as_pg "$BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
    {
      echo "local all all trust"
      echo "host all all 127.0.0.1/32 trust"
      echo "local replication all trust"
      echo "host replication all 127.0.0.1/32 trust"
    } >"$dir/data/pg_hba.conf"
    write_conf "$dir" "$port" "$durable" "${extra[@]+"${extra[@]}"}"
    server_start "$dir"
    [ "$schema" = 0 ] || apply_schema "$dir"
  fi
  print_env "$dir" "$port"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop)
    [ -n "${2:-}" ] && [ -d "$2" ] || exit 0
    server_stop "$2" immediate
    rm -rf "$2" ;;
  stop-server) server_stop "$2" "${3:-fast}" ;;
  start-server) server_start "$2" ;;
  restart) server_stop "$2" "${3:-fast}"; server_start "$2" ;;
  promote) as_pg "$BIN/pg_ctl" -D "$2/data" -w -t 60 promote >/dev/null ;;
  status) as_pg "$BIN/pg_ctl" -D "$2/data" status >/dev/null ;;
  psql) d=$2; shift 2; psql_as "$d" postgres kotte "$@" ;;
  env) print_env "$2" "$(port_of "$2")" ;;
  *) sed -n '2,32p' "$0"; exit 2 ;;
esac
