"""The task API: validates tasks and publishes them, confirmed, to RabbitMQ."""

from services.api.app import create_app

__all__ = ["create_app"]
