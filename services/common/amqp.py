"""Queue declarations shared by API and agent.

RabbitMQ refuses a redeclaration with different arguments (PRECONDITION_FAILED), so both
sides must declare the task queue through this one function.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel


def dead_letter_queue(task_queue: str) -> str:
    """``agent-tasks`` -> ``agent-tasks.dead``."""
    return f"{task_queue}.dead"


def task_queue_arguments(task_queue: str) -> dict[str, Any]:
    """Rejected (requeue=False) messages go to the dead-letter queue via the default exchange."""
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(task_queue),
    }


def declare_task_queue(channel: BlockingChannel, task_queue: str) -> None:
    """Declare the durable dead-letter queue, then the durable task queue that feeds it."""
    channel.queue_declare(queue=dead_letter_queue(task_queue), durable=True)
    channel.queue_declare(queue=task_queue, durable=True,
                          arguments=task_queue_arguments(task_queue))


def declare_results_queue(channel: BlockingChannel, results_queue: str) -> None:
    channel.queue_declare(queue=results_queue, durable=True)
