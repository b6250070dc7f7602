"""Execution engines: ``local`` (in-process, :mod:`vivace.workflows.engine`) and ``dbos``
(:mod:`vivace.workflows.engines.dbos`, DBOS workers on PostgreSQL)."""
