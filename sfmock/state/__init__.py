"""Where the fake keeps what it remembers: one interface, a memory store and a Redis store."""
