"""The worker: claims receipts from the inbox and applies their events exactly once."""
