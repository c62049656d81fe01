"""Queue trigger on AUTH_MAIL_QUEUE: compose and send one queued mail (see shared.mail.courier).

An exception makes the host retry the message after the queue's visibility
timeout, and move it to ``<queue>-poison`` after ``maxDequeueCount`` attempts.
"""

import azure.functions as func

from shared.events import end_invocation, invocation
from shared.mail.courier import courier, max_dequeue_count


def main(message: func.QueueMessage, context: func.Context) -> None:
    token = invocation(context.invocation_id)
    try:
        courier().deliver(
            message.get_body().decode("utf-8", "replace"),
            dequeue_count=message.dequeue_count or 1,
            max_dequeue_count=max_dequeue_count(),
        )
    finally:
        end_invocation(token)
