"""Coverage-guided fuzzing of the C extensions under AddressSanitizer and UBSan
(ops/fuzz/run.sh; docs/testing.md, Fuzzing). Not collected by pytest."""
