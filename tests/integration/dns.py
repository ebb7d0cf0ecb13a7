"""dns - a real DNS server for the tests: Debian's unbound on a loopback port.

    with dns.TestDNS() as server:
        ... resolver = server.addr  ("127.0.0.1:PORT") ...

TestDNS writes an unbound.conf into a temporary directory and starts
`unbound -d` with it on a free loopback port.  It answers authoritatively
(local-zone / local-data) for the test zone ZONE and REFUSES every other
name, so nothing ever leaves the machine.  The zone holds:

    multi.ZONE     MX 10 mx1, 20 mx2, 30 mx3      (mx1 -> 127.0.0.2, mx2 -> .3, mx3 -> .4)
    equal.ZONE     MX 10 eq1, 10 eq2, 10 eq3, 20 mx3  (eq1..3 -> 127.0.0.5, .6, .7)
    nomx.ZONE      no MX, A 127.0.0.8             (implicit MX)
    v6.ZONE        no MX, AAAA ::1, A 127.0.0.9
    nullmx.ZONE    MX 0 .                          (RFC 7505)
    noaddr.ZONE    MX 10 ghost.ZONE (no such name), nothing else
    deadmx.ZONE    MX 10 mx1 (127.0.0.2), 20 mx2 (127.0.0.3)
    partial.ZONE   MX 10 mx1, 20 host.slow (whose address never comes)
    amx.ZONE       A 127.0.0.10 and MX 10 mx1: "[amx]:port" and "amx:port" differ
    tlspeer.ZONE   A 127.0.0.1 (test_relay_tls.py: the name on the peer's certificate)
    tlsbad.ZONE    A 127.0.0.1 (the same peer, a name its certificate does not carry)
    tlsmx.ZONE     MX 10 tlsbad, 20 tlspeer
    nosuch.ZONE    NXDOMAIN (as every undefined name in the zone)
    slow.ZONE      delegated to a loopback UDP/TCP socket that reads and never
                   answers: lookups time out
    servfail.ZONE  delegated to a loopback socket that answers REFUSED to
                   everything: the delegation is lame, the answer SERVFAIL

The test domain is not under `.test`: libunbound answers NXDOMAIN for
`*.test` itself (RFC 6761 default zones) and would never ask this server.

The server is started by start() (waits until it answers a query, bounded)
and always stopped by stop() / the context manager / atexit.
"""

import atexit
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

ZONE = 'spoolgate.example'
UNBOUND = '/usr/sbin/unbound'
START_TIMEOUT = 10.0

# name -> list of (type, data); MX targets are relative to ZONE.
RECORDS = [
    ('multi', 'MX', '10 mx1'), ('multi', 'MX', '20 mx2'), ('multi', 'MX', '30 mx3'),
    ('equal', 'MX', '10 eq1'), ('equal', 'MX', '10 eq2'), ('equal', 'MX', '10 eq3'),
    ('equal', 'MX', '20 mx3'),
    ('nomx', 'A', '127.0.0.8'),
    ('v6', 'AAAA', '::1'), ('v6', 'A', '127.0.0.9'),
    ('nullmx', 'MX', '0 .'),
    ('noaddr', 'MX', '10 ghost'),
    ('deadmx', 'MX', '10 mx1'), ('deadmx', 'MX', '20 mx2'),
    ('partial', 'MX', '10 mx1'), ('partial', 'MX', '20 host.slow'),
    ('amx', 'A', '127.0.0.10'), ('amx', 'MX', '10 mx1'),
    ('mx1', 'A', '127.0.0.2'), ('mx2', 'A', '127.0.0.3'), ('mx3', 'A', '127.0.0.4'),
    ('eq1', 'A', '127.0.0.5'), ('eq2', 'A', '127.0.0.6'), ('eq3', 'A', '127.0.0.7'),
    ('tlspeer', 'A', '127.0.0.1'), ('tlsbad', 'A', '127.0.0.1'),
    ('tlsmx', 'MX', '10 tlsbad'), ('tlsmx', 'MX', '20 tlspeer'),
]

_servers = []


def fqdn(label):
    return '%s.%s.' % (label, ZONE) if label != '.' else '.'


def _local_data(name, rtype, data):
    if rtype == 'MX':
        pref, target = data.split()
        data = '%s %s' % (pref, fqdn(target))
    return 'local-data: "%s 60 IN %s %s"' % (fqdn(name), rtype, data)


def _free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        port = _free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
    raise RuntimeError('no free UDP+TCP port on 127.0.0.1')


class Blackhole:
    """A UDP and TCP socket on 127.0.0.1 that read queries and never answer,
    or, with rcode, answer each UDP query with that rcode and nothing else
    (5 = REFUSED: the resolver finds the delegation lame and says SERVFAIL)."""

    def __init__(self, rcode=None):
        self.rcode = rcode
        # The UDP port may be taken for TCP by someone else: try another.
        for attempt in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(('127.0.0.1', 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(('127.0.0.1', self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                if attempt == 49:
                    raise
        self.tcp.listen(16)
        self.queries = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.udp.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(4096)
                self.queries += 1
                if self.rcode is not None and len(data) >= 12:
                    flags = 0x8000 | (data[2] & 0x79) << 8 | self.rcode
                    self.udp.sendto(data[:2] + struct.pack('>H', flags) + data[4:], peer)
            except (socket.timeout, OSError):
                continue

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.udp.close()
        self.tcp.close()


def query(port, name, rtype=15, timeout=1.0, raw=False):
    """One UDP query to 127.0.0.1:port; returns the rcode (with raw: the
    whole answer packet), or None without answer."""
    qid = os.getpid() & 0xffff
    header = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    qname = b''.join(bytes([len(p)]) + p.encode() for p in name.rstrip('.').split('.')) + b'\0'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(header + qname + struct.pack('>HH', rtype, 1), ('127.0.0.1', port))
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return None
    if len(data) < 12 or struct.unpack('>H', data[:2])[0] != qid:
        return None
    return data if raw else data[3] & 0x0f


class TestDNS:
    """A private unbound serving the test zone on 127.0.0.1:port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='spoolgate-dns-')
        self.port = _free_udp_tcp_port()
        self.closed_port = _free_udp_tcp_port()	# nothing listens there
        self.blackhole = Blackhole()
        self.refuser = Blackhole(rcode=5)
        self.conf = os.path.join(self.dir, 'unbound.conf')
        self.logfile = os.path.join(self.dir, 'unbound.log')
        self.proc = None

    @property
    def addr(self):
        return '127.0.0.1:%d' % self.port

    def config_text(self):
        lines = [
            'server:',
            '  interface: 127.0.0.1',
            '  port: %d' % self.port,
            '  do-ip6: no',
            '  do-daemonize: no',
            '  username: ""',
            '  chroot: ""',
            '  directory: "%s"' % self.dir,
            '  pidfile: ""',
            '  use-syslog: no',
            '  logfile: "%s"' % self.logfile,
            '  verbosity: 1',
            '  num-threads: 1',
            '  so-reuseport: no',
            '  access-control: 127.0.0.0/8 allow',
            '  do-not-query-localhost: no',
            '  module-config: "iterator"',
            '  harden-referral-path: no',
            '  qname-minimisation: no',
            '  # Everything outside the test zone is refused: nothing leaves the machine.',
            '  local-zone: "." refuse',
            '  local-zone: "%s." static' % ZONE,
            '  local-zone: "slow.%s." transparent' % ZONE,
            '  local-zone: "servfail.%s." transparent' % ZONE,
        ]
        lines += ['  ' + _local_data(n, t, d) for n, t, d in RECORDS]
        lines += [
            'stub-zone:',
            '  name: "slow.%s."' % ZONE,
            '  stub-addr: 127.0.0.1@%d' % self.blackhole.port,
            'stub-zone:',
            '  name: "servfail.%s."' % ZONE,
            '  stub-addr: 127.0.0.1@%d' % self.refuser.port,
            '# Root priming, should anything need it, goes nowhere.',
            'stub-zone:',
            '  name: "."',
            '  stub-addr: 127.0.0.1@%d' % self.closed_port,
        ]
        return '\n'.join(lines) + '\n'

    def start(self):
        with open(self.conf, 'w') as f:
            f.write(self.config_text())
        check = subprocess.run(['/usr/sbin/unbound-checkconf', self.conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError('unbound-checkconf: %s%s' % (check.stdout, check.stderr))
        self.proc = subprocess.Popen([UNBOUND, '-d', '-c', self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, 'unbound.stderr'), 'w'))
        _servers.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('unbound exited with %d: %s' % (self.proc.returncode, self.log_text()))
            if query(self.port, 'mx1.' + ZONE, rtype=1, timeout=0.2) == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('unbound did not answer within %.0fs: %s' % (START_TIMEOUT, self.log_text()))

    def log_text(self):
        out = []
        for name in ('unbound.stderr', 'unbound.log'):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    out.append(f.read())
            except OSError:
                pass
        return '\n'.join(out)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        for hole in (self.blackhole, self.refuser):
            if hole is not None:
                hole.close()
        self.blackhole = self.refuser = None
        if self in _servers:
            _servers.remove(self)
        if not os.environ.get('SPOOLGATE_KEEP'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all():
    for s in list(_servers):
        s.stop()
