"""The store: the one owner of tuneloop's persistent production state.

One SQLite file (WAL mode) under ``$TUNELOOP_HOME`` (or ``$TUNELOOP_STORE``) holds model
versions with their lineage and stage history, the request log, feedback and hashed API keys.
Nothing else reads or writes it: the server, the monitor and retraining call these modules.

- :mod:`~tuneloop.store.db`: opening, migrating, one connection per thread (:class:`~tuneloop.store.db.Store`)
- :mod:`~tuneloop.store.versions`: register, resolve, promote, rollback, lineage
- :mod:`~tuneloop.store.requests`: the request log
- :mod:`~tuneloop.store.feedback`: ratings, preferences, corrections, and their queries
- :mod:`~tuneloop.store.feedback_export`: that feedback as ``pairs``, ``ratings`` and ``chat`` data files
- :mod:`~tuneloop.store.keys`: API keys
- :mod:`~tuneloop.store.sql`: every SQL statement, migrations first
"""
