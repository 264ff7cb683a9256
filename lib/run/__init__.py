"""Room 3, runs: sending probes. The runner (plan against the cache, send, write each transcript),
the providers (OpenAI, Anthropic, OpenAI-compatible servers, the bundled model), API keys and prices.

May import: lib.probes, lib.store.
"""
