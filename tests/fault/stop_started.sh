# Sourced by the scripts that run a stack of processes from a Python driver
# (tests/fault/run.sh, tests/mixed/run.sh, tests/bench/mixed/run.sh). The
# driver writes "pid N" and "pgdir DIR" lines to WORK/state as it starts
# things; stop_started WORK stops exactly those, also when the driver died:
# a pid only while it is still ours (its working directory or command line
# is in WORK), then each PostgreSQL folder (tests/pg/pg.sh stop). Run from
# the repository root.
stop_started() {
  local work=$1 kind value
  [ -f "$work/state" ] || return 0
  while read -r kind value; do
    [ "$kind" = pid ] && [ -e "/proc/$value" ] || continue
    case "$(readlink "/proc/$value/cwd" 2>/dev/null) $(tr '\0' ' ' <"/proc/$value/cmdline" 2>/dev/null)" in
      *"$work"*) kill -KILL "$value" 2>/dev/null ;;
    esac
  done <"$work/state"
  while read -r kind value; do
    [ "$kind" = pgdir ] && [ -d "$value" ] && bash tests/pg/pg.sh stop "$value" >/dev/null 2>&1
  done <"$work/state"
  return 0
}
