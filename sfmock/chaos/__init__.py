"""The chaos and control machinery: fault rules and the middleware that performs them, the
journal, sessions, verification, metrics, the control API and the page."""
