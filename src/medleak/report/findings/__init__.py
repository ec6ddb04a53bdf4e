"""The published findings: per-finding analyses of a sweep store and the FINDINGS.md writer."""
