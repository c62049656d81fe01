"""Timer trigger on AUTH_CLEANUP_SCHEDULE: delete the table's dead rows (see shared.operations.cleanup).

Storage failing ends the run with an exception, which the host logs as a
failed invocation; the next occurrence of the schedule tries again.
"""

import azure.functions as func

from shared.events import end_invocation, invocation
from shared.operations.cleanup import run_cleanup
from shared.settings import get_settings


def main(timer: func.TimerRequest, context: func.Context) -> None:
    token = invocation(context.invocation_id)
    try:
        run_cleanup(get_settings(), past_due=timer.past_due)
    finally:
        end_invocation(token)
