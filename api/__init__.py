"""The REST API and dashboard: FastAPI over the store and the orchestrator."""
