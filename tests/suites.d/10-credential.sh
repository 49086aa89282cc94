# Credential store: every credential_* suite (key ring, conformance, tamper,
# json_file, rotation under concurrent readers, blocking facade) also under
# ThreadSanitizer. The ASan+UBSan run above already ran them all.
suite "credential suites (TSan)" ctest --test-dir build-tsan --output-on-failure -R '^credential_'
