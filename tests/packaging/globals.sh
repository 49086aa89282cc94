#!/usr/bin/env bash
# globals.sh LIBRARY: fails, naming them, if LIBRARY (a static archive or a
# shared object) defines a global symbol outside the kotte_ / kotte__
# prefixes: a private name without the prefix collides with the program
# that links the library (a user's own ct_init, for instance).
set -u
lib=$1
case "$lib" in
  *.so*) syms=$(nm -D --defined-only "$lib") ;;
  *) syms=$(nm -g --defined-only "$lib") ;;
esac || { echo "nm failed on $lib"; exit 2; }
# archive member headers ("x.o:") and blank lines have fewer than 3 fields;
# the shared object's own _init/_fini-style names start with an underscore
bad=$(printf '%s\n' "$syms" | awk 'NF == 3 {print $3}' | grep -v '^kotte_' | grep -v '^_' | sort -u)
if [ -n "$bad" ]; then
  echo "global symbols outside kotte_/kotte__ in $lib:"
  printf '  %s\n' $bad
  exit 1
fi
n=$(printf '%s\n' "$syms" | awk 'NF == 3' | wc -l)
# nothing read is no proof: the library must at least define the API
[ "$n" -gt 0 ] || { echo "no global symbols read from $lib"; exit 1; }
echo "$lib: $n global symbols, all kotte_ or kotte__"
