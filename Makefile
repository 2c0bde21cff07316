# The two commands: `make run` serves on SQLite, `make test` runs everything. Both set themselves up.
.PHONY: run test lint bench bench-ldap bench-fhir bench-ssp clean

run:
	scripts/bootstrap.sh
	.venv/bin/sds db upgrade
	.venv/bin/sds seed
	SDS_WEB=$${SDS_WEB:-1} .venv/bin/sds serve

test:
	scripts/test.sh

lint:
	scripts/bootstrap.sh test
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: bench-ldap bench-fhir bench-ssp

bench-ldap:
	scripts/bootstrap.sh test
	bash bench/ldap_vs_slapd.sh

bench-fhir:
	scripts/bootstrap.sh test
	.venv/bin/python bench/fhir.py

bench-ssp:
	scripts/bootstrap.sh test
	.venv/bin/python bench/ssp.py

clean:
	rm -rf .venv instance *.egg-info build dist
