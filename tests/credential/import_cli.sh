#!/usr/bin/env bash
# The import command end to end on a connections.json made by Python's
# cryptography exactly as Kotte makes it: a wrong key fails with a clear
# message and creates nothing; the right key imports every connection into
# a json_file store (mode 0600, no plaintext); a second run skips them all.
#     import_cli.sh PATH/TO/kotte-import-connections PATH/TO/make_kotte_fixture.py
set -u
tool=$1 generator=$2
work=$(mktemp -d /tmp/kotte-import-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; pass=$((pass+1)); else echo "FAIL $name"; fail=$((fail+1)); fi
}
kotte_key="kotte-master-key-0123456789abcdef-and-a-tail"
/usr/bin/python3 "$generator" "$work/kotte" "$kotte_key" || { echo "fixture generator failed"; exit 1; }
src=$work/kotte/connections.json dst=$work/store/credentials.journal
mkdir -p "$work/store"
export MASTER_ENCRYPTION_KEY="$kotte_key"   # Kotte's key, kept as libkotte's current key
unset MASTER_ENCRYPTION_KEYS_PREVIOUS

MASTER_ENCRYPTION_KEY="wrong-master-key-0123456789abcdef-and-a-tail" \
  "$tool" --to "json_file:$dst" "$src" >"$work/out" 2>"$work/err"
check "wrong key: exit status 1" test $? -eq 1
check "wrong key: says the key does not match" grep -q "does not decrypt with the MASTER_ENCRYPTION_KEY" "$work/err"
check "wrong key: says nothing was written" grep -q "Nothing was written" "$work/err"
check "wrong key: never prints the key" bash -c "! grep -q 'master-key' '$work/err'"
check "wrong key: the target was not created" test ! -e "$dst"

"$tool" --dry-run "$src" >"$work/out" 2>"$work/err"
check "dry run: succeeds" test $? -eq 0
check "dry run: counts" grep -q "^5 connections of 4 users decrypt" "$work/out"
check "dry run: writes nothing" test ! -e "$dst"

"$tool" --to "json_file:$dst" "$src" >"$work/out" 2>"$work/err"
check "import: succeeds" test $? -eq 0
check "import: counts" grep -q "^imported 5 connections of 4 users" "$work/out"
check "import: file mode 0600" test "$(stat -c %a "$dst")" = 600
check "import: no plaintext on disk" bash -c "! grep -q 'correct horse battery staple' '$dst'"

"$tool" --to "json_file:$dst" "$src" >"$work/out" 2>"$work/err"
check "again: succeeds" test $? -eq 0
check "again: skips everything" grep -q "^imported 0 connections of 4 users .*(5 were there already)" "$work/out"

"$tool" --to "json_file:$dst" "$work/kotte/expected.json" >"$work/out" 2>"$work/err"
check "a foreign file: exit status 1" test $? -eq 1
check "a foreign file: says so" grep -q "not Kotte's connections.json" "$work/err"
"$tool" "$src" >/dev/null 2>&1
check "usage: --to or --dry-run is required" test $? -eq 2
MASTER_ENCRYPTION_KEY= "$tool" --dry-run "$src" >/dev/null 2>"$work/err"
check "no key: refused" grep -q "MASTER_ENCRYPTION_KEY is not set" "$work/err"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
