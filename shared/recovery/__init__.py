"""Recovery and the mailed codes: password reset, email verification and email change.

- :mod:`.codes`: one-time codes (keyed digests in the table, single use, expiring);
- :mod:`.mailed_codes`: asking for a code by mail and checking it, the same way for every purpose;
- :mod:`.reset`: forgot and reset the password;
- :mod:`.verification`: verify an email address;
- :mod:`.email_change`: move an account to a new email address;
- :mod:`.store`: the changes made with a code (reset, verify, begin an email's move), each one transaction.
"""
