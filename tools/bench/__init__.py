"""``make bench`` and ``make soak``: what a request costs, and minutes of mixed traffic.

The machinery every figure uses:

- :mod:`.command`: the command line (``python -m tools.bench``), the steps ``--only`` picks, in order;
- :mod:`.report`: the report written to docs/performance.md, a table per figure;
- :mod:`.measuring`: samples, timers, CPU and memory of a process;
- :mod:`.app`: the local host on its own Azurite, a thin client, and child processes calling the functions;
- ``meter/``: a ``sitecustomize`` a measured host imports at start-up, timing its own Argon2id work (5b).

The figures, a module each (or a few that belong together):

- :mod:`.overhead`: 1-2, login and register against the work they cannot avoid;
- :mod:`.round_trips`: 3, storage round trips per request;
- :mod:`.growth`: 4, login as the table grows;
- :mod:`.concurrency`: 5, 5c and 8, logins per second, the gate's CPU, memory;
- :mod:`.pinned`: 5b, the concurrency figure with processes pinned to cores;
- :mod:`.tokens`: 6, the token check;
- :mod:`.cold_start`: 7 and the Argon2id table;
- :mod:`.mail`: 9 and 9b, reset requests and mail timing;
- :mod:`.second_factor`: 10, login with a second factor;
- :mod:`.importer`: 11, the import;
- :mod:`.profile`: 12, where the CPU of a request goes;
- :mod:`.soak`: ``make soak``.
"""
