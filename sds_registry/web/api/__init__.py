"""The JSON registry API (/api) and the SSP's HTTP endpoints (/api/ssp, /api/audit): blueprints over the services."""
