"""Private server processes (RabbitMQ, Prometheus) with readiness checks and sure teardown."""
