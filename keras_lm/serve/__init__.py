"""`keras-lm serve`: a trained model behind an OpenAI-compatible HTTP API."""
