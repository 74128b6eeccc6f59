"""The serving app: models by alias, sticky A/B assignment, prediction and feedback logs (FastAPI)."""
