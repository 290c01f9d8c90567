"""`linesync up`'s parts (the command itself is linesync/commands/up.py).

    plan.py         what to provide and which processes to run: pure functions
                    of the environment (missing_services, child_environment,
                    process_specs)
    local_files.py  what `up` keeps in its data directory: the channel secret,
                    the env file, the one-`up`-per-directory lock
    run.py          carrying the plan out under a Supervisor: start the
                    services, wait for them, then the applications, and print
                    the banner once the ingress is ready
"""
