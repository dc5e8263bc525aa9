echo "not done" >&2
exit 1
