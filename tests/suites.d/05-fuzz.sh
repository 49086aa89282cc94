# libFuzzer over the journal loader, JSON merge and id validator (bounded time).
suite "fuzz (journal, JSON, ids)" bash tests/fuzz/run.sh 30
