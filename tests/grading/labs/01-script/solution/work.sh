case "$1" in
    answer) printf 'nonce=%s\nanswer=42\n' "$VLAB_NONCE" > "$VLAB_RESULTS" ;;
    file) echo made > made.txt ;;
esac
