"""The fake service itself: the API handlers, accounts and quotas, admission and balances,
generation, payloads, the image host and its URL signing, and the service's error bodies."""
