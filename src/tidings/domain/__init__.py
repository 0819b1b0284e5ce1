"""Pure domain logic: events, the lifecycle and campaign counters. No I/O here."""
