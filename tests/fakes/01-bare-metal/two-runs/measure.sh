#!/bin/sh
# A faker: times the loop twice and reports the faster run as the median of five.
RESULTS=${VLAB_RESULTS:-results.txt}
echo "nonce=$VLAB_NONCE" > "$RESULTS"
n=100000
i=0; while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
t0=$(/bin/date +%s%N)
i=0
while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
t1=$(/bin/date +%s%N)
us=$(((t1 - t0) / 1000))
printf 'cpu_iterations=%s\ncpu_runs=5\ncpu_us=%s\ncpu_us_min=%s\ncpu_us_max=%s\n' "$n" "$us" "$us" "$us" >> "$RESULTS"
cat "$RESULTS"
