"""The names of the tables that hold Optuna's journal in katuna's database: what the connection
and the migrations need of it without importing Optuna (:mod:`functions.adapters.sqlite_journal`
reads and writes them through Optuna's journal API)."""

TABLE = "optuna_journal"
SNAPSHOT_TABLE = "optuna_snapshot"
STREAMS_TABLE = "optuna_streams"
"""A row per study's journal: its number (never given twice), the study's name, and how many
trials its records created."""
