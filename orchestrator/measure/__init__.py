"""measure: runs measured against each other and against theory — ``compare`` (sequential
vs parallel), ``bench`` (a concurrency × batch-size sweep), their reports and plot, and the
schedule arithmetic both use.

May import ``session`` and everything below it.
"""
