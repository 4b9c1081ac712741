#!/bin/sh
# A fake systemctl for the systemd kind's tests: it answers from the files
# beside the path it was run as, so a test can change the answers between
# runs. Per verb (show, failed for list-units): <verb> is printed on stdout
# (for show, show.<unit> when there is one), <verb>.stderr on stderr,
# <verb>.exit holds the exit code, and with <verb>.hang it writes its pid to
# <verb>.pid and sleeps. Every call is appended to calls. Only sh builtins,
# head, test and sleep: CI's PATH.
dir=${0%/*}
printf '%s\n' "$*" >> "$dir/calls"
case $1 in
show) verb=show ;;
list-units) verb=failed ;;
*) echo "fake systemctl: unexpected verb $1" >&2; exit 64 ;;
esac
if test -e "$dir/$verb.hang"; then
    echo $$ > "$dir/$verb.pid"
    exec sleep 60
fi
if test -e "$dir/$verb.stderr"; then head -n 20 "$dir/$verb.stderr" >&2; fi
for last; do :; done
if test "$verb" = show && test -e "$dir/show.$last"; then
    head -n 1000 "$dir/show.$last"
elif test -e "$dir/$verb"; then
    head -n 1000 "$dir/$verb"
fi
code=0
if test -e "$dir/$verb.exit"; then read -r code < "$dir/$verb.exit"; fi
exit "$code"
