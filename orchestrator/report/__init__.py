"""report: what a run leaves and shows — article files, ``run.json`` (the manifest),
``failed.yaml``, ``report.html``, the summary, progress lines and live bars, the JSON summary.

May import ``trace``, ``engine`` and everything below them.
"""
