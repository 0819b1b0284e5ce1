"""Scale-out: tidings on Celery. Web nodes take webhooks, Celery workers apply them, beat sends
the scheduled jobs.

The inbox table stays the source of truth. A Celery message only wakes a worker: web nodes
send `apply_pending` after each group commit, and a worker that receives it claims pending
receipts (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers share the inbox) and
applies them, exactly as the embedded worker does. A wake-up that is lost (broker down, worker
killed while holding it) only delays work until the next `sweep`, which `tidings beat` sends
every `TIDINGS_SWEEP_INTERVAL_SECONDS`.

- `names`: the queues and task names every process agrees on.
- `config`: the Celery app built from `Settings` (broker URL checked, queues routed).
- `tasks`: what `apply_pending`, `sweep` and `run_job` do, and sending a wake-up.
- `beat`: beat's schedule, built from the same `JOBS` the embedded scheduler runs.
- `run`: `tidings worker` and `tidings beat` in this process.
- `waker`: a web node's wake-ups to the workers (`BrokerWaker`), off the intake's event loop.
- `command_line`: an `app` for Celery's own command line (`celery -A …`); tidings never
  imports it.

Nothing here connects to a broker or a store at import time (except `command_line`, which
builds its app from the environment when `celery` imports it).
"""
