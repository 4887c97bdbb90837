"""HTTP views of the worker (Faust web server): health, JSON API, /metrics."""

from streams.web import views

__all__ = ["views"]
