#!/bin/sh
# Runs "$@" in a network and mount namespace of its own (unshare -rmn),
# whose resolver is slowdns.py on 127.0.0.1:53: fast.test answered at
# once, slow.test never. Usage: unshare -rmn ./run_ns.sh ./gai_fork 5 4
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:30 attempts:1\n' > "$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
python3 "$here/slowdns.py" "$work/dns.ready" & DNS=$!
while [ ! -e "$work/dns.ready" ]; do sleep 0.05; done
rc=0; "$@" || rc=$?
kill $DNS
echo "queries seen (name type client): $work/dns.ready.log"
exit $rc
