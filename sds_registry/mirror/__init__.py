"""``sds mirror``: refresh the registry from a live LDAP directory (the national SDS, a slapd, another registry).

An LDAP *client* (ldap3), unlike ``ldap/`` which is our LDAP server. ``fetch`` reads the source with the
paged-results control; ``plan`` turns its entries into the LDIF importer's records and compares them with
what the registry holds in the same scope; the CLI applies the plan in one transaction. Sits beside
``serve`` above the facades, because it reuses the LDIF importer's entry conversion (``ldap/ldif.py``).
"""
