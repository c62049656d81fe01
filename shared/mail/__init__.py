"""Mail: what the HTTP functions queue, and what the mail function composes and sends.

- :mod:`shared.settings.mail`: the settings (queue, transport, sender, limits, links).
- :mod:`shared.storage.outbox`: the HTTP side, in the storage layer: a mail request put on the queue.
- :mod:`shared.mail.courier`: the mail function's side: look the account up, decide, issue a code, send.
- :mod:`shared.mail.templates`: the mail templates (one folder per kind), rendered with Jinja2.
- :mod:`shared.mail.transport`: SMTP and Azure Communication Services Email.

An HTTP function never talks to a mail server: its time and outcome never
depend on the mail server or on whether an account exists.
"""
