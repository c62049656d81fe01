"""The account core: registering, logging in, passwords, deletion, and Mobile Services' legacy hashes.

- :mod:`.service`: the use cases (``AccountService``: register, log in, change the password, delete);
- :mod:`.store`: the account rows in Table Storage;
- :mod:`.passwords`: Argon2id hashing and the password policy;
- :mod:`.emails`: normalizing an email address;
- :mod:`.mobile_services`: the hashes and tokens of the Mobile Services sample this replaces.
"""
