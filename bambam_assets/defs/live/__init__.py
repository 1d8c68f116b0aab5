"""Live layer wiring: the queue-times poll sensor and the fetch-status assets it reports."""
