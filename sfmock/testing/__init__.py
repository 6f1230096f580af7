"""Client testing: strategies derived from the contract, transports, virtual time, the
harness that runs one schedule, the invariants, and the checks that search for a failing one."""
