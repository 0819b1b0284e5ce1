"""Webhook intake: raw bytes committed to the inbox before any 2xx."""
