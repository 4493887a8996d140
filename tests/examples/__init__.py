"""Examples that the guides show verbatim; the tests run them against real workers."""
