"""OpenLDAP slapd as the reference for our LDAP server: data, searches, comparison, load. Bench-only code."""
