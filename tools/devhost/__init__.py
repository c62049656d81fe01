"""The local host (``python -m tools.devhost``): a stand-in for the Functions host, see docs/local-host.md.

Imports run downward, in this order from the bottom:

- :mod:`.app_settings`, :mod:`.host_json`, :mod:`.cors`, :mod:`.route_constraints`: app settings,
  ``host.json``, CORS and route constraints as the host reads them;
- :mod:`.local_settings` (``local.settings.json``), :mod:`.routes` (route templates);
- :mod:`.worker`: loading and calling a function folder (Microsoft's worker package, or its port);
- :mod:`.functions`: an HTTP function with its route, a queue or timer function with its trigger;
- :mod:`.queue_trigger`, :mod:`.timer_trigger`: the Storage Queues and timer extensions;
- :mod:`.discovery` (finding and loading the function folders), :mod:`.server` (serving HTTP);
- :mod:`.host`: the command line.
"""
