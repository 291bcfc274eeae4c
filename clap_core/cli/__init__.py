"""Command-line tools: `clap-classify` and `clap-eval`."""
