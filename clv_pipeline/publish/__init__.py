"""Write-audit-publish of warehouse tables and the DuckDB catalog."""
