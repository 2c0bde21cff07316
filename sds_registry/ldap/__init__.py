"""LDAPv3 facade over the registry: codec and protocol (sans-IO), asyncio server, DIT and filter translation."""
