#!/usr/bin/env bash
# The README's kotte-server instructions, as written: start the server with
# no arguments in a fresh directory (json_file under ./data, admin/admin),
# log in with curl, read /me, fetch the CSRF token, log out; the cookie is
# then dead. Uses the binary given (tests/run.sh passes the ASan+UBSan one)
# on a free port; the server must exit 0 on SIGTERM.
#   bash tests/server/readme_curl.sh path/to/kotte-server
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir=$(mktemp -d /tmp/kotte-readme.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KOTTE_SERVER_PORT=$port "$bin" >server.log 2>server.err &
pid=$!
for _ in $(seq 100); do grep -q '"event":"listening"' server.log 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
login=$(curl -s -c jar -H 'Content-Type: application/json' \
     -d '{"username":"admin","password":"admin"}' $base/api/v1/auth/login)
me=$(curl -s -b jar $base/api/v1/auth/me)
tok=$(curl -s -b jar $base/api/v1/auth/csrf-token | sed 's/.*"csrf_token":"\([^"]*\)".*/\1/')
out=$(curl -s -b jar -c jar -X POST -H "X-CSRF-Token: $tok" $base/api/v1/auth/logout)
after=$(curl -s -o /dev/null -w '%{http_code}' -b jar $base/api/v1/auth/me)
kill -TERM $pid
code=0; wait $pid || code=$?
echo "login:  $login"
echo "me:     $me"
echo "logout: $out"
echo "me after logout: $after; server exit: $code"
case "$login" in *'"authenticated":true'*) ;; *) echo "login failed"; exit 1;; esac
[ "$me" = '{"user_id":"admin","username":"admin"}' ] || { echo "me failed"; exit 1; }
[ "$out" = '{"logged_out":true}' ] || { echo "logout failed"; exit 1; }
[ "$after" = 401 ] || { echo "cookie still alive"; exit 1; }
[ -s data/users ] && [ -s data/sessions.journal ] || { echo "no ./data files"; exit 1; }
if grep -E 'Sanitizer|runtime error' server.err; then exit 1; fi
[ "$code" = 0 ]
