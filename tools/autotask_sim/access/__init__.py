"""Who may call and how much: API users and auth, thread and hourly limits, injected faults."""
