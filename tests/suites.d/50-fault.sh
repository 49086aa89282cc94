# The stack-level fault run, short (tests/fault/run.sh: 1 round, 3 load
# clients per proxy group): two kotte-server replicas (the ASan+UBSan build:
# a drained one must exit 0 with no sanitizer report) and two uvicorn
# replicas of the drop-in (build-py, from 40-python.sh) on a PostgreSQL 15
# primary + streaming standby of its own, behind nginx; SIGKILL, SIGTERM,
# PostgreSQL restart, failover to the standby. `bash tests/fault/run.sh
# --long` runs 4 rounds with more load; `--proxy mixed` puts both kinds behind
# one upstream. Sourced by tests/run.sh (uses `suite`).
if [ -x build-asan/examples/kotte-server/kotte-server ] && [ -d build-py/bindings/python ]; then
  suite "fault run: replicas, nginx, PostgreSQL restart and failover (short)" \
    bash tests/fault/run.sh
  # the same with one upstream for all four replicas: a cookie from either
  # kind is sent to both (one login across C and Python, issue 12)
  suite "fault run: C and Python replicas behind one upstream (short)" \
    bash tests/fault/run.sh --proxy mixed
else
  suite "fault run: kotte-server (build-asan) and the Python module (build-py) built" false
fi
