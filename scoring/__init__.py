"""The scoring service, decision policy and ledger; home of the `agricredit` command."""
