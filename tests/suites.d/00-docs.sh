# The README stays a map (at most 12 KB, every folder in its layout map, the
# two commands as .ci/run runs them) and no relative link in README.md or
# docs/*.md points to a missing file or heading: tests/docs/check_docs.py.
# Sourced by tests/run.sh (uses `suite`).
suite "docs (README size, links, layout map, the two commands)" python3 tests/docs/check_docs.py
