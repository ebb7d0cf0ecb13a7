#!/usr/bin/env bash
# NAME
#	fresh_run.sh - ./run works from a clean clone on a machine without the user
# SYNOPSIS
#	tests/setup/fresh_run.sh          (SPOOLGATE_SRC: the repository, default ../..)
# DESCRIPTION
#	What a newcomer does, checked end to end: git clone the repository
#	(its committed HEAD: no build/, no var/) into a temporary directory and
#	start ./run there.  ./run runs in a private mount namespace whose /etc
#	is a copy of this machine's without the [spool] user and its group, so
#	./run must create them itself (issue 5: it used to check the
#	configuration first and stop with "no such user 'spoolgate'"), and in
#	a private network namespace, so that its 127.0.0.1:2525 can collide
#	with no other listener on the machine.
#
#	Once the SMTP greeting answers and var/mnt shows inbox/ and outbox/,
#	one message goes in with swaks and must appear in var/mnt/inbox/bob/;
#	./run must have created the [sendmail] group, var/spool/drop (1730)
#	and a set-group-id spoolgate-sendmail, whose message must arrive too.
#	Then SIGTERM to ./run must stop both daemons and unmount var/mnt.
#	Whatever happens, the daemons are stopped and the directory removed.
#
#	The clone builds from scratch (about a minute on 2 cores).
#	Needs root (namespaces, bind mounts, useradd); otherwise skips (77).
# EXIT STATUS
#	0 passed, 1 failed, 77 skipped.
set -euo pipefail

user=spoolgate		# the [spool] user of etc/spoolgate.conf
group=spoolgate-drop	# its [sendmail] group
port=2525		# its [smtpd] listen port
log() { printf 'fresh_run: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# ---- inside the namespaces: $1 = --inside, $2 = the temporary directory ----
inside() {
	local i
	# globals: the EXIT trap uses them after this function returned
	tmp=$1 clone=$1/spoolgate run_pid="" mnt=$1/spoolgate/var/mnt

	# /etc without the user: what a fresh machine has.
	cp -a /etc "$tmp/etc"
	sed -i "/^$user:/d; /^$group:/d" "$tmp/etc/passwd" "$tmp/etc/group" "$tmp/etc/shadow" "$tmp/etc/gshadow" \
	    2>/dev/null || true
	mount --bind "$tmp/etc" /etc
	if getent passwd "$user" >/dev/null || getent group "$user" >/dev/null || getent group "$group" >/dev/null; then
		fail "the private /etc still knows '$user' or '$group'"
	fi
	ip link set lo up
	if ss -Hltn "sport = :$port" | grep -q .; then
		fail "something already listens on port $port in the private network namespace"
	fi

	in_bob() {	# TEXT: within 10 s, a message in var/mnt/inbox/bob/ holds it
		local n
		for n in $(seq 1 100); do
			grep -qs "$1" "$mnt"/inbox/bob/* && return 0
			sleep 0.1
		done
		return 1
	}
	daemon_pids() {	# the daemons of this clone, found by their executables
		local p exe
		for p in /proc/[0-9]*; do
			exe=$(readlink "$p/exe" 2>/dev/null) || continue
			case $exe in "$clone"/build/*/spoolgate-*) echo "${p#/proc/}" ;; esac
		done
	}
	cleanup() {
		local p
		[ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
		for p in $(daemon_pids); do kill -KILL "$p" 2>/dev/null || true; done
		mountpoint -q "$mnt" 2>/dev/null && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
		return 0
	}
	trap cleanup EXIT

	log "starting ./run in the clone (it builds from scratch)"
	(cd "$clone" && exec ./run </dev/null >"$tmp/run.log" 2>&1) &
	run_pid=$!

	# Serving: the greeting on the port, and the mount with its directories.
	for i in $(seq 1 900); do
		kill -0 "$run_pid" 2>/dev/null || { cat "$tmp/run.log" >&2; run_pid=""; fail "./run exited before serving"; }
		if [ -d "$mnt/inbox" ] && [ -d "$mnt/outbox" ] && mountpoint -q "$mnt" &&
		    /usr/bin/python3 -c "import smtplib,sys; s=smtplib.SMTP('127.0.0.1',$port,timeout=5); sys.exit(s.noop()[0]!=250)" 2>/dev/null; then
			break
		fi
		sleep 1
	done
	[ "$i" -lt 900 ] || { cat "$tmp/run.log" >&2; fail "./run was not serving after 900 s"; }
	id "$user" >/dev/null || fail "./run is serving but did not create '$user'"
	log "serving; ./run created $(id "$user")"

	swaks --server "127.0.0.1:$port" --from alice@localhost --to bob@localhost \
	    --header "Subject: fresh-run" --body "first message of a fresh clone" >"$tmp/swaks.log" 2>&1 ||
	    { cat "$tmp/swaks.log" >&2; fail "swaks could not send"; }
	in_bob "first message of a fresh clone" || fail "the message is not in $mnt/inbox/bob/"
	log "the message is in var/mnt/inbox/bob/"

	# spoolgate-sendmail: the group, drop/ and the set-group-id bit are ./run's.
	getent group "$group" >/dev/null || fail "./run did not create the group '$group'"
	[ "$(stat -c '%a %U %G' "$clone/var/spool/drop")" = "1730 $user $group" ] ||
	    fail "var/spool/drop is $(stat -c '%a %U %G' "$clone/var/spool/drop"), not 1730 $user $group"
	[ "$(stat -c '%a %G' "$clone/build/sendmail/spoolgate-sendmail")" = "2755 $group" ] ||
	    fail "spoolgate-sendmail is not set-group-id $group"
	printf 'Subject: fresh-run sendmail\n\nsent by spoolgate-sendmail\n' |
	    SPOOLGATE_CONF="$clone/etc/spoolgate.conf" "$clone/build/sendmail/spoolgate-sendmail" bob@localhost ||
	    fail "spoolgate-sendmail failed"
	in_bob "sent by spoolgate-sendmail" || fail "the sendmail message is not in inbox/bob/"
	log "spoolgate-sendmail's message is in var/mnt/inbox/bob/"

	kill -TERM "$run_pid"
	wait "$run_pid" || true
	run_pid=""
	! mountpoint -q "$mnt" || fail "var/mnt is still mounted after SIGTERM to ./run"
	for i in $(seq 1 50); do [ -z "$(daemon_pids)" ] && break; sleep 0.1; done
	[ -z "$(daemon_pids)" ] || fail "daemons still running after ./run stopped: $(daemon_pids)"
	grep -q "spoolgate: stopped" "$tmp/run.log" || fail "./run did not say it stopped"
	log "SIGTERM stopped both daemons and unmounted"
}

if [ "${1:-}" = --inside ]; then
	inside "$2"
	exit 0
fi

# ---- outside: checks, the clone, the namespaces, the clean-up ----
if [ "$(id -u)" -ne 0 ]; then
	log "skipped: needs root (namespaces, bind mounts, useradd)"
	exit 77
fi
src=${SPOOLGATE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d /tmp/spoolgate-fresh.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$src" "$tmp/spoolgate"
[ ! -e "$tmp/spoolgate/build" ] && [ ! -e "$tmp/spoolgate/var" ] || fail "the clone is not clean"
log "cloned $(git -C "$tmp/spoolgate" log -1 --format='%h %s')"
# Private mount and network namespaces: the bind mount of /etc, the FUSE
# mount and the listener end with them.
unshare --mount --propagation private --net "$0" --inside "$tmp"
