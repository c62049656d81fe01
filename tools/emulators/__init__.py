"""The emulators the local host, the tests and ``make run`` start: Azurite (storage) and MailDev (mail)."""
