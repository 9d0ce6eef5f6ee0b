"""Helpers of scripts/report: job list and runner (jobs.py), plots (plots.py), markdown (markdown.py)."""
