"""The store's schema history as Alembic revisions, shipped with the package (``env.py`` and ``versions/``).

Revisions are explicit DDL (``op.create_table``, ``op.add_column``, ``op.create_index``), never generated from the
live tables at run time, so a database built by any release reaches the same schema. ``0001`` to ``0007`` are the
versions the store's former ``schema_version`` table counted (a database it built is stamped at its highest version
and upgraded from there, see ``bot.store.revisions``).

To change the schema: change the tables in ``bot.store.schema`` and add ``versions/0008_<what>.py`` with
``revision = "0008"`` and ``down_revision = "0007"`` and an ``upgrade()`` doing exactly that change (copy the shape
of an existing revision). ``tests/unit/test_migrations.py`` fails until the head revision builds exactly the tables
of ``bot.store.schema``, on SQLite and on PostgreSQL. Never edit a revision once released.
"""
