#!/usr/bin/env bash
# The long variant of test_kill_points.sh: many kill moments per tool (ctest label "slow").
export KILL_DELAYS="${KILL_DELAYS:-0.01 0.1 0.2 0.3 0.5 0.7 1 1.3 1.7 2.2 3 4}"
exec bash "$(dirname "$0")/test_kill_points.sh"
