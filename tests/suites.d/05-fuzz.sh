# libFuzzer: a fixed number of inputs from a fixed seed per target, the same
# on every machine (tests/fuzz/run.sh; `bash tests/fuzz/run.sh 300` explores).
suite "fuzz (journal, JSON, ids)" bash tests/fuzz/run.sh --runs 400000 1 store
suite "fuzz (kotte-server HTTP streams)" bash tests/fuzz/run.sh --runs 12000 1 http
suite "fuzz (cookie, CSRF header, JSON body)" bash tests/fuzz/run.sh --runs 300000 1 request
