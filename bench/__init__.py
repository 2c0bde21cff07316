"""Benchmarks and the slapd comparison kit; run as scripts or modules, never imported by sds_registry."""
