"""Callyzer (employees' phone call logs): the history API client of the verification poll."""
