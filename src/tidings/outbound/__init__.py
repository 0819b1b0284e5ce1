"""Outbound webhooks: signing, the SSRF guard at connect time, and sending deliveries with
retries (docs/architecture.md, "Outbound webhooks")."""
