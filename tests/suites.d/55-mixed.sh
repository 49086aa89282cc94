# The mixed backend (issue 17): nginx routing as the Ingresses of
# k8s/overlays/dev-mixed route, one kotte-server (the ASan+UBSan build: it
# must exit 0 with no sanitizer report) and two uvicorn replicas of the
# drop-in (build-py) on a PostgreSQL 15 of its own; login, connect, graph
# routes, saved connections, logout through it (tests/mixed/run.sh). On CI
# the Python replicas run the stand-in of Kotte's app; with KOTTE_SUITE_DIR
# and Apache AGE at hand, Kotte's real backend. Sourced by tests/run.sh.
if [ -x build-asan/examples/kotte-server/kotte-server ] && [ -d build-py/bindings/python ]; then
  suite "mixed backend: nginx, kotte-server and two Python replicas" bash tests/mixed/run.sh
else
  suite "mixed backend: kotte-server (build-asan) and the Python module (build-py) built" false
fi
