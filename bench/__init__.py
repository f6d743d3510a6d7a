"""Benchmarks of SPEC §9: one command (``make bench`` → ``python -m bench``), see ``bench.run``.

Modules: ``run`` (orchestration, table, JSON), ``core`` (sizes, figures, database, processes,
statistics), ``context``, ``data`` (units, factors, files, SQL-built history), ``stage`` (a
fresh process that runs the next jobs), and one module per group of figures: ``fig_ingest``,
``fig_engine``, ``fig_api``, ``fig_live``. ``ingest_memory`` and ``recalc_memory`` are the
earlier single-figure probes, kept working as they were.
"""
