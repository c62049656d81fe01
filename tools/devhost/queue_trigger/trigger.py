"""A function folder's ``queueTrigger`` binding, and the message its function gets.

``QueueTriggerAttributeBindingProvider.cs`` and ``QueueListenerFactory.cs`` (see the
package's docstring).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions.queue as func_queue
from azure.storage.queue import QueueMessage

from tools.devhost.app_settings import FunctionIndexingError, resolve_setting_tokens
from tools.devhost.functions import ListenedFunction
from tools.devhost.queue_trigger.connections import QueueConnection, resolve_connection

POISON_SUFFIX = "-poison"


_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def normalize_queue_name(name: str) -> str:
    """Lower-case and validate a queue name (``NormalizeAndValidate``).

    :raises FunctionIndexingError: not a valid queue name.
    """
    normalized = name.lower()
    if not _QUEUE_NAME.fullmatch(normalized):
        raise FunctionIndexingError(
            f"Invalid queue name: {normalized}. A queue name must be 3 to 63 characters of lowercase "
            "letters, digits and single hyphens, beginning and ending with a letter or digit."
        )
    return normalized


def poison_queue_name(queue_name: str) -> str | None:
    """``<queue>-poison``, or ``None`` for a poison queue or a name too long for the suffix."""
    if queue_name.endswith(POISON_SUFFIX):
        return None
    poison = queue_name + POISON_SUFFIX
    return poison if _QUEUE_NAME.fullmatch(poison) else None


@dataclass(frozen=True)
class QueueTrigger:
    """A function folder's ``queueTrigger`` binding, resolved against the app settings."""

    function_name: str
    parameter: str
    queue_name: str
    connection: QueueConnection

    @classmethod
    def from_binding(
        cls, function_name: str, binding: Mapping[str, Any], environ: Mapping[str, str]
    ) -> QueueTrigger:
        """Resolve ``queueName`` (``%setting%``) and ``connection`` as the host indexes a function.

        :raises FunctionIndexingError: what the host would log for this function, which it
            then does not run.
        """
        queue_name = normalize_queue_name(resolve_setting_tokens(str(binding.get("queueName", "")), environ))
        return cls(
            function_name=function_name,
            parameter=str(binding.get("name") or "msg"),
            queue_name=queue_name,
            connection=resolve_connection(binding.get("connection"), environ),
        )


#: A queue-triggered function, ready to be called.
QueueFunction = ListenedFunction[QueueTrigger, func_queue.QueueMessage]


def decode_body(content: str | None, encoding: str) -> bytes:
    """The message body the function gets, from the message text as stored.

    ``base64`` content may hold white space, as .NET's ``Convert.FromBase64String`` allows.

    :raises ValueError: ``base64`` content that is not Base64.
    """
    text = content or ""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError("not Base64") from error


def trigger_message(message: QueueMessage, body: bytes) -> func_queue.QueueMessage:
    """The ``azure.functions.QueueMessage`` the Python worker builds from the host's trigger data."""
    built: func_queue.QueueMessage = func_queue.QueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )
    return built
