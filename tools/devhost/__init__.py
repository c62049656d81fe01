"""The local host (``python -m tools.devhost``): a stand-in for the Functions host, see docs/local-host.md.

- :mod:`.host`: settings, ``host.json``, HTTP routing and requests, disabled functions, CORS;
- :mod:`.worker`: loading and calling a function folder (Microsoft's worker package, or its port);
- :mod:`.queue_trigger`, :mod:`.timer_trigger`: the Storage Queues and timer extensions;
- :mod:`.local_settings`: ``local.settings.json``.
"""
