"""The campaign's memory: SQLAlchemy 2.0 models and the queries the rest of cutloop calls.

The only package that speaks SQL. Query functions take a session and never commit: the
caller (a stage of the loop, an API request) owns the transaction.
"""
