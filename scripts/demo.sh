#!/usr/bin/env bash
# The headless demo (same as `bash scripts/start.sh --headless`).
exec bash "$(dirname "$0")/start.sh" --headless
