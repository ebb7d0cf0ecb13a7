#!/usr/bin/env bash
# scripts/deps.sh: install what spoolgate needs to build, run and test, where missing.
# Sourced by ./run and ./test.  Debian 12 packages only; needs root (or sudo).
#
#   deps_install       apt-get install the packages that dpkg does not show as installed
#   deps_install_fuzz  the same for what ./test --fuzz needs (clang, libFuzzer)
#   deps_user NAME     create the unprivileged system user the daemons drop root to
#   deps_build DIR [MESON-OPTIONS...]  meson setup DIR (once, with the options), ninja

SPOOLGATE_PACKAGES=(
	gcc libc6-dev pkg-config meson ninja-build   # build
	libevent-dev                                  # smtpd event loop (libevent_openssl: the relay's TLS)
	libfuse3-dev fuse3                            # the mount (fusermount3)
	libinih-dev                                   # configuration file
	libgmime-3.0-dev                              # RFC 5322 address lists (outbox)
	libunbound-dev                                # relay: asynchronous DNS (MX, A, AAAA)
	libssl-dev openssl                            # TLS (common/tls.c); certificates in tests
	libgsasl-dev gsasl                            # SMTP AUTH (common/sasl.c); gsasl interop test
	check                                         # unit tests
	python3 swaks python3-aiosmtpd                # integration tests: real SMTP clients and sinks
	libnet-ssleay-perl                            # swaks --tls (test_starttls.py)
	testssl.sh                                    # test_starttls.py: a TLS audit of the STARTTLS listener
	postfix                                       # smtp-source/smtp-sink; the benchmark's peer; the TLS/AUTH peer
	sasl2-bin libsasl2-modules libsasl2-modules-db # the private Postfix's SASL (sasldb, SCRAM-SHA-256)
	unbound                                       # test_dns.py: a real DNS server for the test zone
	procps psmisc                                 # pkill/fuser in scripts
	git util-linux iproute2                       # tests/setup: a fresh clone in private namespaces
)

# Only ./test --fuzz: libFuzzer comes with clang's runtime libraries.  The
# replay of the corpora in ./test and ./test --sanitize needs gcc alone.
SPOOLGATE_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

deps_missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

deps_install() {
	deps_install_list "${SPOOLGATE_PACKAGES[@]}"
}

deps_install_fuzz() {
	deps_install_list "${SPOOLGATE_FUZZ_PACKAGES[@]}"
}

deps_install_list() {
	local missing
	missing=$(deps_missing "$@" | tr '\n' ' ')
	[ -z "${missing// /}" ] && return 0
	echo "spoolgate: installing: $missing" >&2
	# Postfix must not ask questions nor configure itself as the system MTA.
	echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}

deps_user() {
	local name=$1
	[ "$(id -u)" -eq 0 ] || return 0
	id -u "$name" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$name"
}

deps_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >&2
}
