# libFuzzer over the journal loader, JSON merge and id validator: a fixed
# number of inputs from a fixed seed, the same on every machine.
suite "fuzz (journal, JSON, ids)" bash tests/fuzz/run.sh --runs 400000 1
