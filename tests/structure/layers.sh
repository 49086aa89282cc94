#!/usr/bin/env bash
# layers.sh SOURCE_DIR [OBJECT_DIR]: checks the layer picture of
# docs/architecture.md on the sources (and, given the static library's
# object folder, on the compiled objects):
#   - session/ and credential/ never include each other's files, and no
#     object of one calls a function the other defines;
#   - core/ includes only core/; keyring/ only core/ and keyring/ (the
#     layers every store stands on never reach up into a store).
# Prints one line per rule and fails, naming the offending lines, if a rule
# is broken.
set -u
src=$1/libkotte
objs=${2:-}
fail=0

# includes DIR: every #include "x/..." of DIR's files, as "file: x/..."
includes() {
  grep -HoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$src/$1"/*.[ch] |
    sed -E 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*"/: /; s/"$//; s#\.\./##g'
}
# rule NAME DIR REGEX: no include of DIR's files matches REGEX
rule() {
  local name=$1 dir=$2 re=$3 bad
  [ -d "$src/$dir" ] || { echo "FAIL $name: no folder libkotte/$dir"; fail=1; return; }
  bad=$(includes "$dir" | grep -E ": ($re)" || true)
  if [ -n "$bad" ]; then
    echo "FAIL $name:"; printf '  %s\n' "$bad" | sed "s#$src/##"; fail=1
  else
    echo "ok   $name ($(includes "$dir" | wc -l) includes checked)"
  fi
}
rule "session/ includes nothing of credential/" session 'credential/'
rule "credential/ includes nothing of session/" credential 'session/'
rule "core/ includes only core/" core '(keyring|session|credential|pg|runtime)/'
rule "keyring/ includes only core/ and keyring/" keyring '(session|credential|pg|runtime)/'

# The same arrows on the objects: what one store's objects leave undefined
# must not be defined by the other's (a declaration written by hand instead
# of an include would pass the check above).
if [ -n "$objs" ]; then
  # objs DIR: DIR's objects whose source still exists (a build folder keeps
  # the objects of renamed or removed files)
  objs_of() {
    local o
    for o in "$objs/$1"/*.o; do
      [ -e "$src/$1/$(basename "$o" .o)" ] && printf '%s\n' "$o"
    done
  }
  defined() { objs_of "$1" | xargs -r nm -g --defined-only | awk 'NF == 3 {print $3}' | sort -u; }
  undefined() { objs_of "$1" | xargs -r nm -g --undefined-only | awk '{print $NF}' | sort -u; }
  for pair in "session credential" "credential session"; do
    set -- $pair
    nd=$(defined "$2" | wc -l)
    [ "$nd" -gt 0 ] || { echo "FAIL no symbols defined in $objs/$2 (wrong folder?)"; fail=1; continue; }
    bad=$(comm -12 <(undefined "$1") <(defined "$2"))
    if [ -n "$bad" ]; then
      echo "FAIL $1/ objects call $2/ functions:"; printf '  %s\n' $bad; fail=1
    else
      echo "ok   $1/ objects call nothing $2/ defines ($nd symbols of $2/ checked)"
    fi
  done
fi
exit $fail
