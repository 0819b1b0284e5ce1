"""Scheduled jobs: one list of jobs and intervals, run by the embedded scheduler (and, in
scale-out, by Celery beat)."""
