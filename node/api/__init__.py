"""The validator's REST API (FastAPI): routes, guards, problem documents, metrics."""
